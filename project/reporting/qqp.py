"""The QQP experiment's ``report.md`` and training curves: full fine-tuning vs LoRA side by side."""

from __future__ import annotations

from project.data.qqp import CLASS_NAMES
from project.reporting import SYNTHETIC_NOTE
from project.reporting.plots import plt, save_figure
from project.reporting.tables import markdown_table

LABELS = {"full": "Full fine-tuning", "lora": "LoRA"}


def plot_curves(runs: dict, path, title: str) -> None:
    """Training and validation loss, and validation accuracy, per epoch, for every mode."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for mode, run in runs.items():
        history = run["history"]
        epochs = range(1, len(history["loss"]) + 1)
        ax_loss.plot(epochs, history["loss"], "-o", ms=3, label=f"{LABELS[mode]} train")
        ax_loss.plot(epochs, history["val_loss"], "--s", ms=3, label=f"{LABELS[mode]} val")
        ax_acc.plot(epochs, history["val_accuracy"], "-o", ms=3, label=LABELS[mode])
    for ax, name in ((ax_loss, "loss"), (ax_acc, "validation accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)


def _mb(n_bytes) -> str:
    return "–" if n_bytes is None else f"{n_bytes / 2**20:.2f} MB"


def comparison_rows(runs: dict) -> list[dict]:
    """The report's table, one row per quantity, one column per mode."""
    rows = [
        ("Validation accuracy", lambda r: f"{r['val_accuracy']:.4f}"),
        ("Validation loss (best epoch)", lambda r: f"{r['val_loss']:.4f}"),
    ]
    for name in CLASS_NAMES:
        rows.append((f"Precision / recall / F1, {name}",
                     lambda r, n=name: "{precision:.3f} / {recall:.3f} / {f1:.3f}".format(
                         **r["val"]["per_class"][n])))
    rows += [
        ("Trainable parameters", lambda r: f"{r['trainable_params']:,} "
                                           f"({100 * r['trainable_share']:.2f}%)"),
        ("Total parameters", lambda r: f"{r['total_params']:,}"),
        ("Best epoch / epochs run", lambda r: f"{r['best_epoch']} / {r['epochs_run']}"),
        ("Training time", lambda r: f"{r['train_seconds']:.1f} s"),
        ("Training throughput", lambda r: f"{r['samples_per_second']:.1f} samples/s"),
        ("Peak memory (host RSS)", lambda r: f"{r['peak_rss_mb']:.0f} MB"),
        ("Peak accelerator memory", lambda r: "–" if r["peak_device_mb"] is None
         else f"{r['peak_device_mb']:.0f} MB"),
        ("Saved model (.keras)", lambda r: _mb(r["model_bytes"])),
        ("Adapter file (A, B, head)", lambda r: _mb(r.get("adapter_bytes"))),
    ]
    return [{"what": what, **{mode: cell(run) for mode, run in runs.items()}}
            for what, cell in rows]


def qqp_report(metrics: dict) -> str:
    """The Markdown report of one run."""
    data, settings, runs = metrics["data"], metrics["settings"], metrics["modes"]
    lines = ["# QQP paraphrase detection: RoBERTa, full fine-tuning vs LoRA", ""]
    lines += [
        f"Data: `{data['source']}` — {data['rows_read']:,} rows, {data['dropped_missing']} "
        f"dropped for an empty question; training {data['train_rows']:,} pairs "
        f"({100 * data['train_duplicate_rate']:.1f}% duplicates), validation "
        f"{data['validation_rows']:,} ({data['validation_source']}).",
        "",
    ]
    if data["synthetic"] or metrics["model"]["random_weights"]:
        lines += [
            SYNTHETIC_NOTE if data["synthetic"] else "",
            "",
            "**Mechanics check, not a result.** " + (
                "The model is a tiny RoBERTa with random weights (no pre-training), "
                if metrics["model"]["random_weights"] else "") +
            "so full fine-tuning vs LoRA here only shows that both train, evaluate, save and "
            "reload. The real comparison needs the pre-trained model and the real data, on a GPU:",
            "",
            "    python scripts/qqp.py --preset roberta_large_en --data train.csv --balance "
            "--fraction 0.01      # the report",
            "    python scripts/qqp.py --profile paper --preset roberta_large_en "
            "--data train.tsv --dev dev.tsv",
            "",
        ]
    epochs_note = ""
    if settings["epochs"] < settings["profile_epochs"]:
        epochs_note = (f" **{settings['epochs']} epochs, fewer than the {settings['profile']} "
                       f"profile's {settings['profile_epochs']}.**")
    lora_settings, length = settings["lora"], data["length"]
    profile_lrs = settings["profile_lr_full"], settings["profile_lr_lora"]
    lr_note = (
        f" (the {settings['profile']} profile's: {profile_lrs[0]:g} and {profile_lrs[1]:g})"
        if (settings["lr_full"], settings["lr_lora"]) != profile_lrs else ""
    )
    rule = "given" if length["explicit"] else f"max q1 + max q2 + 10 = {length['rule_length']}"
    lines += [
        f"Model: {metrics['model']['description']}; pair length {length['sequence_length']} "
        f"tokens ({rule}, model maximum {length['max_length']}). Backend `{metrics['backend']}`.",
        "",
        f"Training ({settings['profile']} profile): AdamW (epsilon 1e-8, weight decay "
        f"{settings['weight_decay']:g}), learning rate full {settings['lr_full']:g}, LoRA "
        f"{settings['lr_lora']:g}{lr_note}, linear decay, warm-up {settings['warmup_ratio']:.0%}, "
        f"batch {settings['batch_size']}, {settings['epochs']} epochs, best epoch by validation "
        f"accuracy restored.{epochs_note}",
        "",
        f"LoRA ({lora_settings['style']} style): r={lora_settings['rank']}, "
        f"alpha={lora_settings['alpha']:g}, dropout {lora_settings['dropout']:g} on "
        f"{'/'.join(lora_settings['targets'])} of every layer; everything else in the backbone "
        "frozen, classification head trained.",
        "",
    ]
    if lora_settings["style"] == "per-head":
        lines += ["**per-head style is keras-hub's EinsumDense LoRA, not the paper's:** one A per "
                  "head, no dropout, q/k/v biases trainable.", ""]
    majority = max(data["validation_duplicate_rate"], 1 - data["validation_duplicate_rate"])
    lines += [
        "## Comparison", "",
        f"Always answering the majority class would score {majority:.4f} on this validation set.",
        "",
        markdown_table(comparison_rows(runs),
                       [("what", "", "")] + [(m, LABELS[m], "") for m in runs]),
        "",
        "![training curves](curves.png)", "",
        "![tokens per question](lengths.png)", "",
    ]
    for mode, run in runs.items():
        lines += [f"## {LABELS[mode]}: classification report (validation)", "", "```",
                  run["classification_report"].rstrip(), "```", ""]
        if mode == "lora":
            lines += [f"Saved `{run['model_file']}` with LoRA merged into the kernels (largest "
                      f"logit change from merging: {run['merge_max_abs_diff']:.1e}) and "
                      f"`{run['adapter_file']}` ({_mb(run['adapter_bytes'])}: A, B and the head "
                      f"only, against {_mb(run['model_bytes'])} for the whole model).", ""]
    return "\n".join(lines)
