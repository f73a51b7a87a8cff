"""Regenerate the bundled synthetic samples in assets/ (deterministic: same bytes every time).

    python scripts/make_samples.py                 # both
    python scripts/make_samples.py --only fraud

* assets/creditcard_sample.csv.gz: 32,000 rows with the creditcard.csv schema, 160 frauds (0.5%).
* assets/qqp_sample.csv.gz, assets/qqp_tokenizer/{vocab.json,merges.txt}, assets/qqp_tiny_config.json:
  synthetic question pairs with the QQP schema, a byte-level BPE trained on them, a tiny RoBERTa.

Both are synthetic: they let the demo and the tests run offline; they are not real data.
"""

import argparse
from pathlib import Path

from project.data.creditcard_sample import write_creditcard_sample
from project.errors import run_cli

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", choices=("fraud", "qqp"), default=None)
    p.add_argument("--assets", type=Path, default=ASSETS, help="output folder (default assets/)")
    args = p.parse_args()
    if args.only in (None, "fraud"):
        print(write_creditcard_sample(args.assets / "creditcard_sample.csv.gz"))
    if args.only in (None, "qqp"):
        from project.data.qqp_sample import write_qqp_assets

        for path in write_qqp_assets(args.assets):
            print(path)
    return 0


if __name__ == "__main__":
    run_cli(main)
