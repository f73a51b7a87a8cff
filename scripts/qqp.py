"""QQP paraphrase detection with RoBERTa (keras-hub): full fine-tuning vs paper-faithful LoRA.

    python scripts/qqp.py                          # bundled synthetic sample, tiny random model
    python scripts/qqp.py --preset roberta_large_en --data train.csv --balance --fraction 0.01
    python scripts/qqp.py --profile paper --preset roberta_large_en --data train.tsv --dev dev.tsv

Profiles (explicit options override them):
  report  the course report: lr full 1e-6, LoRA 1e-4; 10 epochs; linear decay, no warm-up,
          no weight decay (Hugging Face Trainer defaults); length max(q1)+max(q2)+10 tokens.
  paper   the LoRA paper (Hu et al. 2021, RoBERTa-large on QQP): LoRA lr 3e-4 (full: 1e-5, the
          RoBERTa paper's GLUE range, as 3e-4 would wreck full fine-tuning); 20 epochs; linear
          decay with 6% warm-up; weight decay 0.1; length 512 (capped at the model's maximum).

Writes under --out: metrics.json, report.md, lengths.png, curves.png, <mode>-history.csv and per
mode <mode>/model.keras (LoRA merged into the kernels: a plain keras-hub model that loads in safe
mode) and, for LoRA, lora/adapter.npz (only what LoRA trained). A `.keras` file evaluates with
`python scripts/evaluate.py <out>/lora/model.keras --task qqp --data dev.tsv`.
"""

from project.backend import select_backend_or_exit

BACKEND = select_backend_or_exit()  # before keras is imported

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from project.backend import add_backend_argument  # noqa: E402
from project.data import qqp  # noqa: E402
from project.errors import InputError, run_cli  # noqa: E402
from project.io import save_model, write_json, write_text  # noqa: E402
from project.models import lora  # noqa: E402
from project.models.roberta import (  # noqa: E402
    build_classifier,
    build_preprocessor,
    detached_preprocessor,
    fine_tuning_optimizer,
    predict_logits,
)
from project.reporting.qqp import LABELS, plot_curves, qqp_report  # noqa: E402
from project.training.loop import fit  # noqa: E402
from project.training.metrics import (  # noqa: E402
    evaluation_report,
    positive_scores,
    sparse_metrics,
)

REPORT_EPOCHS = 10
PROFILES = {
    "report": dict(lr_full=1e-6, lr_lora=1e-4, epochs=REPORT_EPOCHS, warmup_ratio=0.0,
                   weight_decay=0.0, sequence_length=None),
    "paper": dict(lr_full=1e-5, lr_lora=3e-4, epochs=20, warmup_ratio=0.06, weight_decay=0.1,
                  sequence_length=512),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=qqp.SAMPLE_PATH,
                   help="Kaggle train.csv or GLUE train.tsv (default: the bundled sample)")
    p.add_argument("--dev", type=Path, default=None,
                   help="validation file (e.g. GLUE dev.tsv); default: a stratified 80/20 split")
    p.add_argument("--preset", default=None,
                   help="keras-hub preset (roberta_large_en; needs the network once) or a local "
                        "preset folder; default: the tiny random RoBERTa in assets/")
    p.add_argument("--mode", choices=("full", "lora", "both"), default="both")
    p.add_argument("--profile", choices=tuple(PROFILES), default="report")
    p.add_argument("--lora-style", choices=lora.STYLES, default="matrix",
                   help="matrix: the paper's/PEFT's LoRA; per-head: keras-hub's EinsumDense LoRA")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="learning rate for both modes")
    p.add_argument("--lr-full", type=float, default=None, help="default: the profile's")
    p.add_argument("--lr-lora", type=float, default=None, help="default: the profile's")
    p.add_argument("--weight-decay", type=float, default=None, help="default: the profile's")
    p.add_argument("--warmup-ratio", type=float, default=None, help="default: the profile's")
    p.add_argument("--fraction", type=float, default=None, help="keep this stratified share")
    p.add_argument("--balance", action="store_true", help="undersample the majority class")
    p.add_argument("--sequence-length", type=int, default=None,
                   help="default: the profile's (report: the max+max+10 rule)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="default runs/qqp-<timestamp>")
    p.add_argument("--verbose", default="auto", help="Keras progress: auto, 0, 1 or 2")
    add_backend_argument(p)
    args = p.parse_args()

    profile = PROFILES[args.profile]
    for key in ("epochs", "weight_decay", "warmup_ratio", "sequence_length"):
        if getattr(args, key) is None:
            setattr(args, key, profile[key])
    args.lr_full = args.lr_full or args.lr or profile["lr_full"]
    args.lr_lora = args.lr_lora or args.lr or profile["lr_lora"]
    if args.epochs < 1 or args.batch_size < 1:
        raise InputError("--epochs and --batch-size must be at least 1")
    if min(args.lr_full, args.lr_lora) <= 0 or args.weight_decay < 0:
        raise InputError("learning rates must be positive and --weight-decay not negative")
    if not 0 <= args.warmup_ratio < 1:
        raise InputError(f"--warmup-ratio must be in [0, 1), got {args.warmup_ratio}")
    if args.mode != "full":
        lora.check_settings(args.rank, args.alpha, args.lora_dropout, style=args.lora_style)
    args.verbose = int(args.verbose) if args.verbose.isdigit() else args.verbose
    args.out = args.out or Path("runs") / f"qqp-{time.strftime('%Y%m%d-%H%M%S')}"
    return args


def new_model(args, sequence_length: int | None, mode: str):
    """A fresh classifier for ``mode`` (same seed, so full and LoRA start from the same weights)."""
    keras.utils.set_random_seed(args.seed)
    model = build_classifier(args.preset, sequence_length=sequence_length, dropout=0.1)
    if mode == "lora":
        lora.enable_lora(model, args.rank, args.alpha, args.lora_dropout,
                         style=args.lora_style, seed=args.seed)
    return model


def train_mode(mode: str, args, data, features, sequence_length: int) -> dict:
    """Train one mode, evaluate it on validation, save it; return its metrics."""
    out = args.out / mode
    model = new_model(args, sequence_length, mode)
    trainable, total = lora.count_params(model)
    learning_rate = args.lr_full if mode == "full" else args.lr_lora
    steps = args.epochs * -(-len(data.train) // args.batch_size)
    model.compile(
        optimizer=fine_tuning_optimizer(learning_rate, steps, args.warmup_ratio, args.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=sparse_metrics(),
    )
    y_train = data.train[qqp.LABEL].to_numpy()
    y_val = data.validation[qqp.LABEL].to_numpy()
    train_ds = qqp.make_dataset(features["train"], y_train, args.batch_size, shuffle=True,
                                seed=args.seed)
    val_ds = qqp.make_dataset(features["validation"], y_val, max(64, args.batch_size))

    print(f"\n== {LABELS[mode]}: {trainable:,} of {total:,} parameters trainable, "
          f"lr {learning_rate:g}, {args.epochs} epochs ==", flush=True)
    with detached_preprocessor(model):
        result = fit(
            model, train_ds, validation_data=val_ds, epochs=args.epochs, out_dir=args.out,
            num_samples=len(y_train), monitor="val_accuracy", mode="max", prefix=f"{mode}-",
            verbose=args.verbose, shuffle=False,
        )
    logits = predict_logits(model, features["validation"])
    report = evaluation_report(y_val, positive_scores(logits), 0.5, qqp.CLASS_NAMES)

    run = {
        "label": LABELS[mode],
        "learning_rate": learning_rate,
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": trainable / total,
        "val_accuracy": report["accuracy"],
        "val_loss": result.history["val_loss"][result.best_epoch - 1],
        **result.summary(),
        "val": {k: v for k, v in report.items() if k != "classification_report"},
        "classification_report": report["classification_report"],
        "history": result.history,
    }
    if mode == "lora":
        run["lora"] = lora.lora_config(model)
        adapter = lora.save_adapter(model, out / "adapter.npz")
        run["adapter_file"], run["adapter_bytes"] = f"{mode}/adapter.npz", adapter.stat().st_size
        lora.merge_lora(model)
        merged = predict_logits(model, features["validation"])
        run["merge_max_abs_diff"] = float(np.abs(merged - logits).max())
    # A fresh optimizer: the file then holds no training state (and no custom schedule).
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, epsilon=1e-8),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=sparse_metrics())
    saved = save_model(model, out / "model.keras")
    run["model_file"], run["model_bytes"] = f"{mode}/model.keras", saved.stat().st_size
    return run


def main() -> int:
    args = parse_args()
    data = qqp.load_qqp(args.data, args.dev, fraction=args.fraction, balance=args.balance,
                        seed=args.seed)
    print(f"{data.source}: {data.rows_read:,} rows, dropped {data.dropped_missing} with an empty "
          f"question; {len(data.train):,} training and {len(data.validation):,} validation pairs")

    # One model first, to read its tokenizer and maximum length for the length rule.
    probe = build_classifier(args.preset, dropout=0.1)
    max_length = probe.backbone.max_sequence_length
    requested = args.sequence_length
    if args.profile == "paper" and requested == PROFILES["paper"]["sequence_length"]:
        requested = min(requested, max_length)  # the paper's 512, capped at the model's maximum
    choice = qqp.choose_sequence_length(probe.preprocessor.tokenizer,
                                        [data.train, data.validation], max_length, requested)
    qqp.save_length_histogram(choice, args.out / "lengths.png")
    preprocessor = build_preprocessor(probe.preprocessor.tokenizer, choice.sequence_length)
    features = {"train": qqp.tokenize_pairs(preprocessor, data.train),
                "validation": qqp.tokenize_pairs(preprocessor, data.validation)}
    dims = {k: getattr(probe.backbone, k)
            for k in ("num_layers", "num_heads", "hidden_dim", "vocabulary_size")}
    del probe  # the modes build their own models; do not keep a second copy in memory
    print(f"pair length {choice.sequence_length} (rule: {choice.rule_length}, "
          f"model maximum {max_length})")

    modes = ("full", "lora") if args.mode == "both" else (args.mode,)
    runs = {mode: train_mode(mode, args, data, features, choice.sequence_length)
            for mode in modes}

    description = (f"`{args.preset}`" if args.preset else "tiny RoBERTa, random weights") + (
        f" ({dims['num_layers']} layers, {dims['num_heads']} heads, hidden "
        f"{dims['hidden_dim']}, vocabulary {dims['vocabulary_size']:,})")
    metrics = {
        "experiment": "qqp",
        "backend": BACKEND,
        "keras_version": keras.__version__,
        "keras_hub_version": keras_hub.__version__,
        "data": {**data.summary(), "length": choice.summary()},
        "model": {"preset": args.preset, "random_weights": args.preset is None,
                  "description": description, "max_sequence_length": max_length},
        "settings": {
            "profile": args.profile, "profile_epochs": PROFILES[args.profile]["epochs"],
            "report_epochs": REPORT_EPOCHS,
            "profile_lr_full": PROFILES[args.profile]["lr_full"],
            "profile_lr_lora": PROFILES[args.profile]["lr_lora"],
            "epochs": args.epochs, "batch_size": args.batch_size,
            "lr_full": args.lr_full, "lr_lora": args.lr_lora, "weight_decay": args.weight_decay,
            "warmup_ratio": args.warmup_ratio, "seed": args.seed, "optimizer": "AdamW eps 1e-8",
            "lora": {"style": args.lora_style, "rank": args.rank, "alpha": args.alpha,
                     "dropout": 0.0 if args.lora_style == "per-head" else args.lora_dropout,
                     "targets": list(lora.TARGETS)},
        },
        "modes": runs,
    }
    title = "QQP training curves" + (" (synthetic data)" if data.synthetic else "")
    plot_curves(runs, args.out / "curves.png", title)
    write_json(args.out / "metrics.json", metrics)
    write_text(args.out / "report.md", qqp_report(metrics))
    for run in runs.values():
        print(f"{run['label']}: validation accuracy {run['val_accuracy']:.4f}, "
              f"{run['trainable_params']:,} trainable, {run['train_seconds']:.1f} s")
    print(f"\nwrote {args.out}/report.md, metrics.json, plots and models")
    return 0


if __name__ == "__main__":
    run_cli(main)
