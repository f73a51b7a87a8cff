"""Reload a saved `.keras` model (Keras safe mode: no code from the file runs) and evaluate it.

    python scripts/evaluate.py runs/fraud-*/none/model.keras --task fraud
    python scripts/evaluate.py runs/qqp-*/lora/model.keras --task qqp            # held-out pairs
    python scripts/evaluate.py runs/qqp-*/lora/model.keras --task qqp --data dev.tsv
    python scripts/evaluate.py runs/qqp-*/full/model.keras --task qqp --adapter runs/qqp-*/lora/adapter.safetensors
    python scripts/evaluate.py runs/qqp-*/full/model.keras --task qqp --quantize int8   # int8 inference

The model's folder holds model.json, written with it: the task, the SHA-256 of the model file,
and what rebuilds its data (fraud: the scaler, protocol and seeds; QQP: the split and its seed);
one of another task or model file is refused. The chosen --split of the run's data is evaluated
(default: test, else validation); another QQP file is evaluated whole, and pairs without an
is_duplicate column get predictions only. A model saved under one backend evaluates under another.
"""

import argparse
import json
from pathlib import Path

from project.backend import add_backend_argument
from project.cli import Parser, finite_float, flag_names
from project.errors import InputError, run_cli
from project.io import check_output_file
from project.settings import quantize_mode


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", type=Path,
                   help="a .keras file of scripts/fraud.py or qqp.py (QQP: or a Hugging Face dir)")
    p.add_argument("--task", choices=("fraud", "qqp"), required=True)
    p.add_argument("--data", type=Path, default=None, help="default: the run's data file")
    p.add_argument("--split", choices=("test", "val", "all"), default=None,
                   help="which part of the run's data (default: the held-out part)")
    p.add_argument("--adapter", type=Path, default=None,
                   help="QQP: a LoRA adapter to put on the model first: adapter.safetensors "
                        "(ours) or a PEFT adapter folder")
    p.add_argument("--quantize", default=None, metavar="MODE",
                   help="QQP: the backbone's frozen projections in int8 first (int8 inference)")
    p.add_argument("--threshold", type=finite_float, default=None,
                   help="decision threshold (default: the one saved with the model, else 0.5)")
    p.add_argument("--json", type=Path, default=None, help="write the metrics here")
    p.add_argument("--predictions", type=Path, default=None, help="save the scores as .npy")
    add_backend_argument(p)
    args = p.parse_args(argv)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise InputError(f"--threshold must be in [0, 1], got {args.threshold:g}")
    for option, path in (("--json", args.json), ("--predictions", args.predictions)):
        if path is not None:
            check_output_file(path, option)
    if args.adapter is not None and args.task != "qqp":
        raise InputError("--adapter is for --task qqp (LoRA adapters of the RoBERTa classifier)")
    if quantize_mode(args.quantize) and args.task != "qqp":
        raise InputError("--quantize is for --task qqp (the RoBERTa classifier's backbone)")
    return args


def read_record(model_path: Path, task: str, required: bool) -> dict | None:
    """The model's ``model.json``, checked: same task, and written for this very model file."""
    from project.experiments.rundir import file_sha256
    path = model_path.parent / "model.json"
    if model_path.is_dir():  # a Hugging Face or preset folder: no record of ours
        return None
    if not model_path.is_file() and task == "fraud":  # (a QQP name may be a preset)
        raise InputError(f"{model_path}: no such model file")
    if not path.is_file():
        if required:
            raise InputError(f"{path}: missing (scripts/{task}.py writes it beside model.keras)")
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        kind, digest = record["task"], record["model_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: damaged or incomplete ({type(err).__name__}: {err})") from None
    if kind != task:
        raise InputError(f"{path}: belongs to a {kind} model, not --task {task}")
    if digest != file_sha256(model_path):
        raise InputError(f"{path}: written for another model file than {model_path.name} (the "
                         "model was replaced after its record); rerun or restore the pair")
    return record


def fraud_data(args, record: dict):
    """Scaled features and labels of the model's split (or every row scaled, with --split all)."""
    import numpy as np

    from project.data import creditcard
    from project.sampling.protocols import protocol_split
    split_name = args.split or "test"
    try:
        mean, scale = np.asarray(record["mean"], float), np.asarray(record["scale"], float)
        if mean.shape != (29,) or scale.shape != (29,):
            raise ValueError("mean and scale must hold 29 numbers")
        protocol, seed = record["protocol"], int(record["seed"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{args.model.parent / 'model.json'}: incomplete ({err})") from None
    df = creditcard.load_creditcard(args.data or creditcard.BUNDLED_SAMPLE)
    if split_name == "all":
        x, y = creditcard.features_and_labels(df)
        return ((x - mean) / scale).astype(np.float32), y, split_name
    split = protocol_split(df, protocol, seed=seed, stratify=record.get("stratify", False),
                           n_neighbors=record.get("adasyn_k", 5),
                           beta=record.get("adasyn_beta", 1.0),
                           variant=record.get("adasyn_variant", "he2008"),
                           split_seed=record.get("split_seed", creditcard.SPLIT_SEED))
    if not np.allclose(split.scaler.mean_, mean, rtol=1e-5, atol=1e-6):
        print("warning: this data's training split differs from the one the model saw")
    if split_name == "test":
        return split.x_test, split.y_test, split_name
    return split.x_val, split.y_val, split_name


def qqp_pairs(args, record: dict | None):
    """The question pairs to score, and a description of which ones."""
    from project.data.qqp import SAMPLE_PATH, read_qqp
    from project.data.qqp_splits import load_qqp
    from project.experiments.rundir import file_sha256
    data = record.get("data", {}) if record else {}
    run_file = data.get("path")
    path = args.data or (Path(run_file) if run_file else SAMPLE_PATH)
    same = bool(data.get("sha256")) and path.is_file() and file_sha256(path) == data["sha256"]
    if not same or data.get("dev"):
        if args.split not in (None, "all"):
            raise InputError(f"--split {args.split}: {path} is not the run's training data, so "
                             "it has no split; it is evaluated whole")
        table = read_qqp(path, labels_required=False)
        return table.frame, f"{path} (all {len(table.frame):,} pairs)"
    split_name = args.split or ("test" if data.get("test_fraction") else "val")
    if split_name == "all":
        return read_qqp(path).frame, f"{path} (all pairs, training pairs included)"
    prepared = load_qqp(path, None, fraction=data.get("fraction"), seed=data.get("seed", 0),
                        balance=data.get("balance", False), test_fraction=data.get("test_fraction"),
                        validation_fraction=data["val_fraction"])
    if split_name == "test" and prepared.test is None:
        raise InputError("--split test: the run had no test split (it was run without "
                         "--test-fraction); use --split val")
    frame = prepared.test if split_name == "test" else prepared.validation
    return frame, f"{path} ({split_name} split of the run, {len(frame):,} pairs)"


def save_outputs(args, scores, record: dict) -> None:
    """The scores to --predictions (.npy) and ``record`` to --json, where asked for."""
    import numpy as np

    from project.io import atomic_path, write_json
    if args.predictions:
        with atomic_path(args.predictions) as tmp, open(tmp, "wb") as f:
            np.save(f, scores)
    if args.json:
        write_json(args.json, record)


def predictions_only(args, model, features, what: str, backend: str) -> int:
    """Unlabelled pairs: the duplicate probability of each, nothing to score."""
    from project.experiments.qqp import predict_logits
    from project.training.metrics import positive_scores
    scores = positive_scores(predict_logits(model, features))
    duplicates = int((scores >= 0.5).sum())
    print(f"{args.model} (qqp, {what}, backend {backend}): no is_duplicate column, so "
          f"predictions only: {duplicates:,} of {len(scores):,} pairs predicted "
          f"duplicate (mean probability {scores.mean():.4f})")
    save_outputs(args, scores, {"task": "qqp", "model": str(args.model), "backend": backend,
                                "evaluated": what, "n": len(scores), "labelled": False,
                                "predicted_duplicates": duplicates})
    return 0


@flag_names
def main(argv=None) -> int:
    args = parse_args(argv)
    from project.backend import select_backend

    backend = select_backend(["--backend", args.backend])
    from project.models.saving import load_model

    record = read_record(args.model, args.task, required=args.task == "fraud")
    if args.task == "fraud":
        model = load_model(args.model)
        from project.experiments.fraud import evaluate

        x, y, what = fraud_data(args, record)
        threshold = args.threshold if args.threshold is not None else record.get("threshold", 0.5)
        report = evaluate(model, x, y, threshold)
        what = f"{what} rows"
    else:
        from project.data.qqp_length import tokenize_pairs
        from project.experiments.qqp import evaluate
        from project.interop import load_classifier
        from project.training.devices import check_quantize_support

        check_quantize_support(args.quantize, backend)
        model = load_classifier(args.model, adapter=args.adapter, quantize=args.quantize)
        frame, what = qqp_pairs(args, record)
        features = tokenize_pairs(model.preprocessor, frame)
        if "is_duplicate" not in frame:
            return predictions_only(args, model, features, what, backend)
        report = evaluate(model, features, frame["is_duplicate"].to_numpy())
        threshold = 0.5
    print(f"{args.model} ({args.task}, {what}, backend {backend}): n={report.n}, threshold "
          f"{threshold:.4f}")
    print(report.classification_report)
    print("  ".join(f"{k}={getattr(report, k):.4f}" for k in (
        "accuracy", "precision", "recall", "f1", "average_precision", "roc_auc", "loss")
        if getattr(report, k) is not None))
    save_outputs(args, report.scores, {"task": args.task, "model": str(args.model),
                                       "backend": backend, "evaluated": what, **report.to_dict()})
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
