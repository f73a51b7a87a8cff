"""Reload a saved `.keras` model (Keras safe mode: no code from the file runs) and evaluate it.

    python scripts/evaluate.py runs/fraud-*/none/model.keras --task fraud
    python scripts/evaluate.py runs/qqp-*/lora/model.keras --task qqp --data dev.tsv

Fraud: the model's folder holds preprocessing.json (scaler, protocol, seed, threshold); the same
protocol split is rebuilt from --data and the chosen --split is evaluated ("all" scales every row
with the saved scaler). Works across backends: a model saved under torch evaluates under
tensorflow with the same predictions.
"""

from project.backend import select_backend_or_exit

BACKEND = select_backend_or_exit()  # before keras is imported

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from project.backend import add_backend_argument  # noqa: E402
from project.errors import InputError, run_cli  # noqa: E402
from project.io import load_model, write_json  # noqa: E402
from project.training.metrics import evaluation_report, positive_scores  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", type=Path, help="a .keras file written by scripts/fraud.py or qqp.py")
    p.add_argument("--task", choices=("fraud", "qqp"), required=True)
    p.add_argument("--data", type=Path, default=None, help="default: the bundled sample")
    p.add_argument("--split", choices=("test", "val", "all"), default="test",
                   help="fraud: which rows to evaluate (default test)")
    p.add_argument("--threshold", type=float, default=None,
                   help="decision threshold (default: the one saved with the model, else 0.5)")
    p.add_argument("--json", type=Path, default=None, help="write the metrics here")
    p.add_argument("--predictions", type=Path, default=None, help="save the scores as .npy")
    add_backend_argument(p)
    return p.parse_args()


def fraud_inputs(args):
    """Features, labels and the saved threshold for the fraud model's split."""
    from project.data.creditcard import BUNDLED_SAMPLE, features_and_labels, load_creditcard
    from project.sampling.protocols import protocol_split

    prep_path = args.model.parent / "preprocessing.json"
    if not prep_path.is_file():
        raise InputError(f"{prep_path}: missing (scripts/fraud.py writes it beside model.keras)")
    prep = json.loads(prep_path.read_text())
    df = load_creditcard(args.data or BUNDLED_SAMPLE)
    if args.split == "all":
        x, y = features_and_labels(df)
        x = ((x - np.asarray(prep["mean"])) / np.asarray(prep["scale"])).astype(np.float32)
    else:
        split = protocol_split(df, prep["protocol"], seed=prep["seed"], stratify=prep["stratify"])
        if not np.allclose(split.scaler.mean_, prep["mean"], rtol=1e-5, atol=1e-6):
            print("warning: this data's training split differs from the one the model saw")
        x, y = (split.x_test, split.y_test) if args.split == "test" else (split.x_val, split.y_val)
    return x, y, prep.get("threshold", 0.5), ("normal", "fraud")


def main() -> int:
    args = parse_args()
    model = load_model(args.model)
    if args.task == "fraud":
        x, y, threshold, names = fraud_inputs(args)
        scores = positive_scores(model.predict(x, batch_size=4096, verbose=0))
    else:
        from project.data.qqp import evaluation_inputs  # tokenised pairs for this model

        inputs, y, names = evaluation_inputs(model, args.data)
        scores = positive_scores(model.predict(inputs, batch_size=64, verbose=0))
        threshold = 0.5
    threshold = args.threshold if args.threshold is not None else threshold
    report = evaluation_report(y, scores, threshold, names)

    print(f"{args.model} ({args.task}, {args.split if args.task == 'fraud' else 'data'}, "
          f"backend {BACKEND}): n={report['n']}, threshold {threshold:.4f}")
    print(report["classification_report"])
    print("  ".join(f"{k}={report[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1",
                                                    "pr_auc", "roc_auc") if report[k] is not None))
    if args.predictions:
        from project.io import atomic_path

        with atomic_path(args.predictions) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, scores)
    if args.json:
        write_json(args.json, {"task": args.task, "model": str(args.model), "backend": BACKEND,
                               **{k: v for k, v in report.items() if k != "classification_report"}})
    return 0


if __name__ == "__main__":
    run_cli(main)
