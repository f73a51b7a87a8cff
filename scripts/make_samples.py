"""Regenerate the bundled synthetic samples (deterministic: the same bytes every time).

    python scripts/make_samples.py                 # both, under runs/samples/
    python scripts/make_samples.py --out assets    # refresh the bundled files themselves
    python scripts/make_samples.py --only fraud

* assets/creditcard_sample.csv.gz: 32,000 rows with the creditcard.csv schema, 160 frauds (0.5%).
* assets/qqp_sample.csv.gz, assets/qqp_tokenizer/{vocab.json,merges.txt}, assets/qqp_tiny_config.json:
  synthetic question pairs with the QQP schema, a byte-level BPE trained on them, a tiny RoBERTa.

Both are synthetic: they let the demo and the tests run offline; they are not real data.
"""

import argparse
from pathlib import Path

from project.cli import Parser
from project.data.creditcard_sample import write_creditcard_sample
from project.errors import run_cli


def main(argv=None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", choices=("fraud", "qqp"), default=None)
    p.add_argument("--out", type=Path, default=Path("runs/samples"),
                   help="output folder (default runs/samples; --out assets refreshes the bundled "
                        "files)")
    args = p.parse_args(argv)
    args.assets = args.out
    if args.only in (None, "fraud"):
        print(write_creditcard_sample(args.assets / "creditcard_sample.csv.gz"))
    if args.only in (None, "qqp"):
        from project.data.qqp_sample import write_qqp_assets

        for path in write_qqp_assets(args.assets):
            print(path)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
