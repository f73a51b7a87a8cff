"""Credit-card fraud detection: the report's ConvNet under three ADASYN protocols.

    python scripts/fraud.py --protocol all                        # bundled synthetic sample
    python scripts/fraud.py --data creditcard.csv --protocol all --backend jax
    python scripts/fraud.py --protocol all --seeds 0,1,2,3,4      # mean, std, median, intervals
    python scripts/fraud.py --data creditcard.csv --protocol all --adasyn-variant report \
        --epochs 46                                               # the report's experiment
    python scripts/fraud.py --resume runs/fraud-20261129-101500   # continue a killed run

Protocols: none; adasyn-all (ADASYN before the split: the paper's, LEAKY); adasyn-train (ADASYN
on the training split only: the correct one). Each run also fits logistic regression and gradient
boosting on the same rows (--no-baselines to skip).

Writes under --out: config.json, then per protocol (per seed with --seeds) model.keras,
model.json, history.csv, history.png, confusion matrices and result.json; at the end
metrics.json, report.md and pr_curves.png.
"""

import argparse
import dataclasses
from pathlib import Path

from project import settings
from project.cli import (
    Parser,
    add_run_options,
    finite_float,
    flag_names,
    given_options,
    new_or_resumed,
    seeds_of,
)
from project.errors import InputError, run_cli
from project.experiments.config import FraudConfig

# Options recorded in the configuration (what --resume compares): the config's fields.
CONFIG_OPTIONS = tuple(f.name for f in dataclasses.fields(FraudConfig))


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=None, help="creditcard.csv or .csv.gz (default: the bundled "
                   "synthetic sample)")
    p.add_argument("--protocol", choices=[*settings.PROTOCOLS, "all"], default=None,
                   help="default none; all runs the three")
    p.add_argument("--epochs", type=int, default=None, help=f"default {settings.FRAUD_EPOCHS}")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"default {settings.FRAUD_BATCH_SIZE}")
    p.add_argument("--learning-rate", type=finite_float, default=None,
                   help=f"Adam's (default {settings.FRAUD_LEARNING_RATE:g})")
    p.add_argument("--stratify", action="store_true", default=None,
                   help="stratified 60/20/20 split")
    p.add_argument("--threshold", default=None,
                   help="decision threshold: a number in [0, 1] (default "
                        f"{settings.THRESHOLD:g}) or val-f1")
    p.add_argument("--adasyn-k", type=int, default=None,
                   help=f"ADASYN's neighbours (default {settings.ADASYN_K})")
    p.add_argument("--adasyn-beta", type=finite_float, default=None,
                   help=f"ADASYN's balance level (default {settings.ADASYN_BETA:g})")
    p.add_argument("--adasyn-variant", choices=settings.ADASYN_VARIANTS, default=None,
                   help=f"for both ADASYN protocols: he2008 (He et al.) or report (the course "
                        f"report's function, behind its published numbers); default "
                        f"{settings.ADASYN_VARIANT}")
    p.add_argument("--no-baselines", dest="baselines", action="store_false", default=None,
                   help="skip logistic regression and gradient boosting")
    add_run_options(p, "fraud")
    args = p.parse_args(argv)

    given = given_options(args, CONFIG_OPTIONS)
    if args.protocol is not None:
        given["protocols"] = settings.PROTOCOLS if args.protocol == "all" else (args.protocol,)
    if seeds_of(args) is not None:
        given["seeds"] = seeds_of(args)
    if "threshold" in given and given["threshold"] != "val-f1":
        try:
            given["threshold"] = finite_float(given["threshold"])
        except Exception:
            raise InputError(f"--threshold {args.threshold!r}: give a number in [0, 1] or "
                             "val-f1") from None
    if "data" in given:
        given["data"] = str(Path(given["data"]))
    return args, given


@flag_names
def main(argv=None) -> int:
    args, given = parse_args(argv)
    config, out, resume = new_or_resumed(args, given, "fraud",
                                         lambda options: FraudConfig(**options).validate())
    from project.experiments import fraud
    from project.reporting.fraud import write_fraud_outputs

    result = fraud.run(config, out, resume=resume, verbose=args.verbose)
    if result.chief:  # in a run of several processes, process 0 writes
        report = write_fraud_outputs(result, out)
        print(f"\nwrote {report}, metrics.json, plots and models under {out}")
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
