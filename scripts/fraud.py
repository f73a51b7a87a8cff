"""Credit-card fraud detection: the report's ConvNet under three ADASYN protocols.

    python scripts/fraud.py                                   # bundled synthetic sample
    python scripts/fraud.py --data creditcard.csv --protocol all --backend jax

Writes under --out: metrics.json, report.md, pr_curves.png and, per protocol, model.keras,
preprocessing.json, history.csv, history.png and confusion matrices.
"""

from project.backend import select_backend_or_exit

BACKEND = select_backend_or_exit()  # before keras is imported

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402

from project.backend import add_backend_argument  # noqa: E402
from project.data.creditcard import (  # noqa: E402
    BUNDLED_SAMPLE,
    FEATURES,
    is_bundled_sample,
    load_creditcard,
)
from project.errors import InputError, run_cli  # noqa: E402
from project.io import save_model, write_json, write_text  # noqa: E402
from project.models import convnet  # noqa: E402
from project.reporting.fraud import fraud_report  # noqa: E402
from project.reporting.plots import plot_confusion_matrix, plot_history, plot_pr_curves  # noqa: E402
from project.sampling.protocols import PROTOCOLS, label, protocol_split  # noqa: E402
from project.training.loop import fit  # noqa: E402
from project.training.metrics import choose_threshold, evaluation_report  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=BUNDLED_SAMPLE, help="creditcard.csv (or .csv.gz)")
    p.add_argument("--protocol", choices=[*PROTOCOLS, "all"], default="none")
    p.add_argument("--epochs", type=int, default=convnet.EPOCHS)
    p.add_argument("--batch-size", type=int, default=convnet.BATCH_SIZE)
    p.add_argument("--learning-rate", type=float, default=convnet.LEARNING_RATE)
    p.add_argument("--seed", type=int, default=0, help="weights, shuffling and ADASYN")
    p.add_argument("--stratify", action="store_true", help="stratified 60/20/20 split")
    p.add_argument("--monitor", default="val_pr_auc", help="metric that picks the best epoch")
    p.add_argument("--patience", type=int, default=None, help="early stopping (default: off)")
    p.add_argument("--threshold", default="0.5", help="a number, or 'val-f1' (best F1 on val)")
    p.add_argument("--tensorboard", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="default runs/fraud-<timestamp>")
    p.add_argument("--verbose", default="auto", help="Keras progress: auto, 0, 1 or 2")
    add_backend_argument(p)
    args = p.parse_args()
    if args.epochs < 1 or args.batch_size < 1:
        raise InputError("--epochs and --batch-size must be at least 1")
    if args.threshold != "val-f1":
        try:
            args.threshold = float(args.threshold)
        except ValueError:
            raise InputError(f"--threshold {args.threshold!r}: give a number or 'val-f1'") from None
    args.verbose = int(args.verbose) if args.verbose.isdigit() else args.verbose
    args.out = args.out or Path("runs") / f"fraud-{time.strftime('%Y%m%d-%H%M%S')}"
    return args


def run_protocol(df, protocol: str, args) -> tuple[dict, tuple]:
    """Split (and oversample) the data, train the ConvNet, evaluate it and save it."""
    out = args.out / protocol
    split = protocol_split(df, protocol, seed=args.seed, stratify=args.stratify)
    keras.utils.set_random_seed(args.seed)
    model = convnet.compile_convnet(convnet.build_convnet(), learning_rate=args.learning_rate)

    print(f"\n== {label(protocol)}: {len(split.y_train):,} training rows ==")
    result = fit(
        model, split.x_train, split.y_train[:, None].astype("float32"),
        validation_data=(split.x_val, split.y_val[:, None].astype("float32")),
        epochs=args.epochs, batch_size=args.batch_size, shuffle=True,
        out_dir=out, num_samples=len(split.y_train), monitor=args.monitor, mode="max",
        patience=args.patience, tensorboard=args.tensorboard, verbose=args.verbose,
    )

    val_scores = model.predict(split.x_val, batch_size=4096, verbose=0).ravel()
    test_scores = model.predict(split.x_test, batch_size=4096, verbose=0).ravel()
    threshold = (
        choose_threshold(split.y_val, val_scores) if args.threshold == "val-f1" else args.threshold
    )
    val = evaluation_report(split.y_val, val_scores, threshold, ("normal", "fraud"))
    test = evaluation_report(split.y_test, test_scores, threshold, ("normal", "fraud"))

    title = f"ConvNet, {label(protocol)}"
    plot_history(result.history, out / "history.png", title, metrics=("loss", "accuracy", "pr_auc"))
    for name, rep in (("val", val), ("test", test)):
        plot_confusion_matrix(rep["confusion_matrix"], ["normal", "fraud"],
                              out / f"confusion_{name}.png", f"{title} — {name}")
    write_json(out / "preprocessing.json", {
        "features": FEATURES, "mean": split.scaler.mean_, "scale": split.scaler.scale_,
        "protocol": protocol, "seed": args.seed, "stratify": args.stratify,
        "threshold": threshold,
    })
    save_model(model, out / "model.keras")

    run = {
        "label": label(protocol),
        "leaky": protocol == "adasyn-all",
        "counts": split.counts(),
        "synthetic_train_rows": int((split.train_rows < 0).sum()),
        "synthetic_val_rows": int((split.val_rows < 0).sum()),
        "synthetic_test_rows": int((split.test_rows < 0).sum()),
        "epochs": result.epochs_run,
        "threshold": threshold,
        **result.summary(),
        "val": _scalars(val),
        "test": _scalars(test),
        "test_classification_report": test["classification_report"],
        "model": f"{protocol}/model.keras",
    }
    return run, (split.y_test, test_scores)


def _scalars(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "classification_report"}


def main() -> int:
    args = parse_args()
    df = load_creditcard(args.data)
    synthetic = is_bundled_sample(args.data)
    protocols = PROTOCOLS if args.protocol == "all" else (args.protocol,)

    runs, curves = {}, {}
    for protocol in protocols:
        runs[protocol], curves[label(protocol)] = run_protocol(df, protocol, args)

    metrics = {
        "experiment": "fraud",
        "backend": BACKEND,
        "keras_version": keras.__version__,
        "data": {
            "path": str(args.data), "synthetic": synthetic,
            "rows": len(df), "frauds": int(df["Class"].sum()),
        },
        "settings": {
            "epochs": args.epochs, "paper_epochs": convnet.EPOCHS, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "seed": args.seed, "stratify": args.stratify,
            "monitor": args.monitor,
            "threshold_rule": "best F1 on validation" if args.threshold == "val-f1"
            else f"fixed {args.threshold:g}",
        },
        "protocols": runs,
    }
    plot_pr_curves(curves, args.out / "pr_curves.png",
                   "Test precision-recall" + (" (synthetic data)" if synthetic else ""))
    write_json(args.out / "metrics.json", metrics)
    write_text(args.out / "report.md", fraud_report(metrics))
    print(f"\nwrote {args.out}/report.md, metrics.json, plots and models")
    return 0


if __name__ == "__main__":
    run_cli(main)
