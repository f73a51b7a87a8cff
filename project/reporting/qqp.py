"""The QQP experiment's outputs from a :class:`~project.experiments.qqp.QQPResult`: ``report.md``
(full fine-tuning vs LoRA side by side), ``metrics.json`` and the training curves.

>>> write_qqp_outputs(result, "runs/qqp-x")      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from project.io import write_json, write_text
from project.reporting import SYNTHETIC_NOTE, scaling_note
from project.reporting.plots import plot_length_histogram, plt, save_figure
from project.reporting.published import PAPER_QQP, REPORT_QQP
from project.reporting.tables import markdown_table, noise_lines, stat_cell, value_cell
from project.settings import MODE_LABELS, QQP_PROFILES


def plot_curves(runs: list, path, title: str) -> None:
    """Training and validation loss, and validation accuracy, per epoch, for every mode (the
    first seed's runs); the restored best epoch of each is marked."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for run in runs:
        history, label = run.training.history, run.label
        epochs = range(1, len(history["loss"]) + 1)
        line = ax_loss.plot(epochs, history["loss"], "-o", ms=3, label=f"{label} train")[0]
        ax_loss.plot(epochs, history["val_loss"], "--s", ms=3, color=line.get_color(),
                     label=f"{label} val")
        ax_acc.plot(epochs, history["val_accuracy"], "-o", ms=3, color=line.get_color(),
                    label=f"{label} (best: epoch {run.training.best_epoch})")
        ax_acc.axvline(run.training.best_epoch, color=line.get_color(), ls=":", lw=1)
    for ax, name in ((ax_loss, "loss"), (ax_acc, "validation accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _mb(n_bytes) -> str:
    return "–" if n_bytes is None else f"{n_bytes / 2**20:.2f} MB"


def _rows(has_test: bool) -> list:
    """The table's rows: ``(label, value of a run, format)``; a value is a number or a tuple."""
    rows = [("Validation accuracy", lambda r: r.val.accuracy, "{:.4f}"),
            ("Validation loss (best epoch)", lambda r: r.val.loss, "{:.4f}")]
    if has_test:
        rows.append(("Test accuracy", lambda r: r.test.accuracy, "{:.4f}"))
    for name in ("not duplicate", "duplicate"):
        rows.append((f"Precision / recall / F1, {name}",
                     lambda r, n=name: tuple(r.val.per_class[n][k]
                                             for k in ("precision", "recall", "f1")),
                     "{:.3f} / {:.3f} / {:.3f}"))
    return rows + [
        ("Trainable parameters", lambda r: (r.trainable_params,
                                            100 * r.trainable_params / r.total_params),
         "{:,.0f} ({:.2f}%)"),
        ("Total parameters", lambda r: r.total_params, "{:,.0f}"),
        ("Best epoch / epochs run", lambda r: (r.training.best_epoch, r.training.epochs_run),
         "{:g} / {:g}"),
        ("Training time", lambda r: r.training.train_seconds, "{:.1f} s"),
        ("Training throughput", lambda r: r.training.samples_per_second or 0, "{:.1f} samples/s"),
        ("Peak memory (host RSS)", lambda r: r.training.peak_rss_mb, "{:.0f} MB"),
        ("Peak accelerator memory", lambda r: r.training.peak_device_mb, "{:.0f} MB"),
        ("Saved model (.keras)", lambda r: r.model_bytes / 2**20, "{:.2f} MB"),
        ("Adapter file (A, B, head)", lambda r: None if r.adapter_bytes is None
         else r.adapter_bytes / 2**20, "{:.2f} MB"),
    ]


def _median_cell(runs: list, value, fmt: str) -> str:
    """``fmt`` of the median over ``runs`` of ``value(run)`` (each part of a tuple on its own);
    "–" when a run has no value."""
    import numpy as np

    values = [value(r) for r in runs]
    if any(v is None for v in values):
        return "–"
    if isinstance(values[0], tuple):
        return fmt.format(*np.median(np.asarray(values, dtype=float), axis=0))
    return fmt.format(float(np.median(values)))


def comparison_rows(result) -> list[dict]:
    """The side-by-side table: one row per quantity, one column per mode. One seed: the run's
    values, accuracies with their 95% bootstrap interval. Several seeds: the **median over the
    seeds** of every row (the LoRA paper's statistic), after mean ± std (median) rows."""
    config = result.config
    runs = {mode: result.runs_of(mode) for mode in config.modes}
    has_test = all(r.test is not None for mode_runs in runs.values() for r in mode_runs)
    out = []
    if len(config.seeds) > 1:
        n = len(config.seeds)
        splits = [("val", "Validation")] + ([("test", "Test")] if has_test else [])
        for split, name in splits:
            for metric in ("accuracy", "loss"):
                out.append({"what": f"{name} {metric}, over {n} seeds: mean ± std (median)",
                            **{m: stat_cell(result.summary[m][split][metric]) for m in runs}})
        for what, value, fmt in _rows(has_test):
            out.append({"what": f"{what}, median of {n} seeds",
                        **{m: _median_cell(r, value, fmt) for m, r in runs.items()}})
        return out
    for what, value, fmt in _rows(has_test):
        cells = {}
        for mode, (run,) in runs.items():
            if what.endswith("accuracy"):
                ev = run.val if what.startswith("Validation") else run.test
                cells[mode] = value_cell(ev.accuracy, ev.intervals.get("accuracy"))
            else:
                cells[mode] = _median_cell([run], value, fmt)
        out.append({"what": what + (" [95% CI]" if what.endswith("accuracy") else ""), **cells})
    return out


def _published(result) -> list[str]:
    """The report's and the paper's numbers, with what they can be compared with."""
    report = [("Course report (RoBERTa-large, 1% of balanced Kaggle QQP, 299 validation pairs): "
               "validation accuracy", "val_accuracy", ".2f"),
              ("Course report: validation loss", "val_loss", ".2f"),
              ("Course report: trainable parameters", "trainable", ",")]
    rows = [{"what": what, **{m: format(REPORT_QQP[m][key], fmt) for m in ("full", "lora")}}
            for what, key, fmt in report]
    rows.append({"what": "LoRA paper (RoBERTa-large, GLUE QQP dev, median of 5 seeds): accuracy",
                 "full": f"{PAPER_QQP['full']['accuracy']:.3f}",
                 "lora": f"{PAPER_QQP['lora']['accuracy']:.3f} (q,v only)"})
    if result.synthetic or result.model["random_weights"]:
        caveat = ("**Not comparable with this run**: it used synthetic pairs and/or a tiny "
                  "random-weight model. They are what a run with `--preset roberta_large_en` on "
                  "the real data aims at.")
    else:
        caveat = ("Comparable in kind: check that the data, the share kept and the validation "
                  "set match (the report validated on 299 pairs; the paper on GLUE's dev set).")
    table = markdown_table(rows, [("what", "", ""), *((m, h, "") for m, h in MODE_LABELS.items())])
    return ["## Published numbers", "", caveat, "", table, ""]


def qqp_report(result) -> str:
    """The Markdown report of one QQP run."""
    config, data, model, length = result.config, result.data, result.model, result.data["length"]
    lines = ["# QQP paraphrase detection: RoBERTa, full fine-tuning vs LoRA", ""]
    test_part = (f", test {data['test_rows']:,} (never used to pick an epoch)"
                 if data.get("test_rows") else "")
    lines += [
        f"Data: `{data['source']}` — {data['rows_read']:,} rows, {data['dropped_missing']} "
        f"dropped for an empty question; training {data['train_rows']:,} pairs "
        f"({100 * data['train_duplicate_rate']:.1f}% duplicates), validation "
        f"{data['validation_rows']:,} ({data['validation_source']}){test_part}"
        + (f"; split anew for every seed (`--resplit`; data seeds "
           f"{', '.join(map(str, data['data_seeds']))}; sizes are the first seed's)"
           if config.resplit else "") + ".", "",
    ]
    if result.synthetic or model["random_weights"]:
        lines += [
            SYNTHETIC_NOTE if result.synthetic else "", "",
            "**Mechanics check, not a result.** " + (
                "The model is a tiny RoBERTa with random weights (no pre-training), "
                if model["random_weights"] else "") +
            "so full fine-tuning vs LoRA here only shows that both train, evaluate, save and "
            "reload. The real comparison needs the pre-trained model and the real data, on a GPU:",
            "",
            "    python scripts/qqp.py --preset roberta_large_en --data train.csv --balance "
            "--fraction 0.01      # the report",
            "    python scripts/qqp.py --profile paper --preset roberta_large_en "
            "--data train.tsv --dev dev.tsv",
            "",
        ]
    for note in config.notes:
        lines += [f"**Note:** {note}", ""]
    profile = QQP_PROFILES[config.profile]
    epochs_note = "" if config.epochs >= profile["epochs"] else (
        f" **{config.epochs} epochs, fewer than the {config.profile} profile's "
        f"{profile['epochs']}.**")
    rule = ("given" if length["explicit"]
            else f"max q1 + max q2 + 10 over the training pairs = {length['rule_length']}")
    seeds = ", ".join(map(str, config.seeds))
    clipping = (f"at global norm {config.clip_norm:g} (of the whole batch's gradient)"
                if config.clip_norm else "off")
    lines += [
        f"Model: {model['description']}; pair length {length['sequence_length']} tokens "
        f"({rule}, model maximum {length['max_length']}). "
        + scaling_note(config, result.environment), "",
        f"Training ({config.profile} profile): AdamW (epsilon 1e-8, weight decay "
        f"{config.weight_decay:g}), learning rate full {config.lr_full:g}, LoRA "
        f"{config.lr_lora:g}, linear decay, warm-up {config.warmup_ratio:.0%} of the updates "
        f"(rounded up, as Hugging Face), gradient clipping {clipping}, batch "
        f"{config.batch_size}" + (f" (accumulated over {config.grad_accum})"
                                  if config.grad_accum > 1 else "") +
        f", {config.epochs} epochs, seeds {seeds}; best epoch by `{config.monitor}` restored."
        f"{epochs_note}" + (" Activations recomputed in the backward pass (`--remat`)."
                            if config.remat else ""), "",
    ]
    if "lora" in config.modes:
        targets = "/".join(config.targets)
        lines += [
            f"LoRA ({config.lora_style} style): r={config.rank}, alpha={config.alpha:g}, dropout "
            f"{config.lora_dropout:g} on {targets} of every layer (q/k/v is the report's choice; "
            "the paper's, and PEFT's default, is q,v); everything else in the backbone frozen, "
            "classification head trained.", "",
        ]
        if config.quantize:
            lines += [f"LoRA's frozen base in **{config.quantize}**: every frozen projection "
                      "(token embedding, q/k/v, attention output, feed-forward) stored in int8 "
                      "with one scale per output channel, inputs quantised per token on the fly "
                      "(Keras's `quantize`); A, B, biases, layer norms and the head in float32.",
                      ""]
        if config.lora_style == "per-head":
            lines += ["**per-head style is keras-hub's EinsumDense LoRA, not the paper's:** one A "
                      "per head, no dropout, q/k/v biases trainable.", ""]
    if data.get("test_rows") is None:
        lines += ["Validation accuracy is **optimistic**: the same validation pairs picked the "
                  "best epoch and are scored here. Add `--test-fraction 0.1` for an untouched "
                  "test split.", ""]
    majority = max(data["validation_duplicate_rate"], 1 - data["validation_duplicate_rate"])
    lines += [
        "## Comparison", "",
        f"Always answering the majority class would score {majority:.4f} on this validation set. "
        + ("Cells: the median over the seeds (the LoRA paper's statistic), after the mean ± std "
           "rows." if len(config.seeds) > 1 else
           "Intervals: 95% bootstrap over the evaluated pairs (one seed)."), "",
        markdown_table(comparison_rows(result),
                       [("what", "", "")] + [(m, MODE_LABELS[m], "") for m in config.modes]),
        "",
    ]
    if result.comparisons:
        lines += ["### Is the difference more than noise?", "",
                  "LoRA minus full fine-tuning on the same pairs; differences are means over the "
                  "seeds.", ""]
        lines += noise_lines(result.comparisons, len(config.seeds), config.resplit, "pairs")
        if result.synthetic:
            moved = ("with the seed (initial weights, data order, dropout) and with the draw of "
                     "the pairs" if len(config.seeds) > 1
                     else "on another draw of pairs like these")
            lines += [f"On synthetic pairs and a random model these intervals only say how much "
                      f"this mechanics check moves {moved}.", ""]
    lines += ["![training curves](curves.png)", "", "![tokens per question](lengths.png)", ""]
    lines += _published(result)
    for run in result.runs:
        lines += [f"## {run.label}, seed {run.seed}: classification report (validation)", "",
                  "```", run.val.classification_report.rstrip(), "```", ""]
        if run.mode == "lora":
            saved = ("unmerged, on its int8 base (LoRA cannot be merged into int8 kernels)"
                     if run.merge_max_abs_diff is None else "with LoRA merged into the kernels "
                     f"(largest logit change from merging: {run.merge_max_abs_diff:.1e})")
            lines += [f"Saved `{run.directory}/model.keras` {saved} and "
                      f"`{run.directory}/adapter.safetensors` ({_mb(run.adapter_bytes)}: A, B and "
                      f"the head only, against {_mb(run.model_bytes)} for the whole model).", ""]
    return "\n".join(lines)


def write_qqp_outputs(result, out) -> Path:
    """Write ``lengths.png``, ``curves.png``, ``metrics.json`` and ``report.md`` (last)."""
    out = Path(out)
    if result.lengths is not None:
        plot_length_histogram(result.lengths, out / "lengths.png", "Tokens per question" + (
            " (synthetic data)" if result.synthetic else ""))
    first_seed = result.config.seeds[0]
    title = "QQP training curves" + (" (synthetic data)" if result.synthetic else "")
    plot_curves([r for r in result.runs if r.seed == first_seed], out / "curves.png", title)
    write_json(out / "metrics.json", result.to_dict())
    return write_text(out / "report.md", qqp_report(result))
