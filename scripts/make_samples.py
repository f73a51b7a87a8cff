"""Regenerate the bundled synthetic samples (deterministic: the same bytes every time).

    python scripts/make_samples.py                 # both, under runs/samples/
    python scripts/make_samples.py --out assets    # refresh the bundled files themselves
    python scripts/make_samples.py --only fraud
    python scripts/make_samples.py --only fraud --rows 284807 --frauds 492 --out runs/real-size
    python scripts/make_samples.py --only qqp --pairs 404290 --out runs/real-size

* creditcard_sample.csv.gz: 32,000 rows with the creditcard.csv schema, 160 frauds (0.5%);
  --rows and --frauds change the size (284,807 and 492: the real file's).
* qqp_sample.csv.gz, qqp_tokenizer/, qqp_tiny_config.json: synthetic question pairs with the QQP
  schema, a byte-level BPE trained on them, a tiny RoBERTa; --pairs N writes only N pairs.

Both are synthetic: they let the demo and the tests run offline; they are not real data.
"""

import argparse
from pathlib import Path

from project.cli import Parser
from project.data.creditcard_sample import write_creditcard_sample
from project.errors import InputError, run_cli


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", choices=("fraud", "qqp"), default=None)
    p.add_argument("--out", type=Path, default=Path("runs/samples"),
                   help="output folder (default runs/samples; assets: the bundled files)")
    p.add_argument("--rows", type=int, default=32_000, help="fraud sample rows (default 32,000)")
    p.add_argument("--frauds", type=int, default=160, help="frauds among them (default 160)")
    p.add_argument("--pairs", type=int, default=None,
                   help="write only a QQP pairs file of this many pairs (default: the bundled "
                        "sample with its tokenizer and tiny config)")
    args = p.parse_args(argv)
    if not 1 <= args.frauds < args.rows:
        raise InputError(f"--frauds {args.frauds}: must be at least 1 and below --rows {args.rows}")
    if args.pairs is not None and args.pairs < 100:
        raise InputError(f"--pairs {args.pairs}: must be at least 100")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.only in (None, "fraud"):
        print(write_creditcard_sample(args.out / "creditcard_sample.csv.gz", n_rows=args.rows,
                                      n_fraud=args.frauds))
    if args.only in (None, "qqp"):
        from project.data.qqp_sample import write_qqp_assets, write_qqp_sample

        if args.pairs is not None:
            print(write_qqp_sample(args.out / "qqp_sample.csv.gz", n_pairs=args.pairs))
        else:
            for path in write_qqp_assets(args.out):
                print(path)
    return 0


if __name__ == "__main__":
    run_cli(main)
