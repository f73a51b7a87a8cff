"""The fraud experiment's outputs from a :class:`~project.experiments.fraud.FraudResult`:
``report.md`` (one table across protocols and models, like the report's, and the paired
comparisons), ``metrics.json`` and the test precision-recall curves.

>>> write_fraud_outputs(result, "runs/fraud-x")      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from project.data.creditcard import CLASS_NAMES
from project.io import write_json, write_text
from project.reporting import LEAKY_NOTE, SYNTHETIC_NOTE, scaling_note
from project.reporting.plots import plot_confusion_matrix, plot_history, plot_pr_curves
from project.reporting.published import REAL_CREDITCARD, REPORT_FRAUD, REPORT_FRAUD_SLIP
from project.reporting.tables import markdown_table, noise_lines, stat_cell, value_cell
from project.settings import FRAUD_EPOCHS, protocol_label

_METRICS = [("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"),
            ("f1", "F1"), ("average_precision", "Avg precision"), ("roc_auc", "ROC-AUC")]
_MODELS = [("ConvNet", None), ("logistic regression", "logistic-regression"),
           ("gradient boosting", "gradient-boosting")]
_VARIANTS = {"he2008": "as He et al. (2008)", "report": "as the course report's function"}


def _leaked(comp) -> list[str]:
    """The LEAKY note under a comparison whose test rows were partly its training rows."""
    if not comp["leaked_rows"]:
        return []
    return [f"  - LEAKY: {comp['leaked_rows']:,} of these test rows were training rows of "
            f"{protocol_label(comp['a'])} (first seed), so its scores on them are inflated."]


def comparison_rows(result) -> list[dict]:
    """One row per protocol, model and split: with one seed the run's values (F1 and average
    precision with their interval), with several mean ± std (median) over seeds."""
    rows = []
    several = len(result.config.seeds) > 1
    for protocol in result.config.protocols:
        runs = result.runs_of(protocol)
        for model, baseline in _MODELS:
            if baseline and baseline not in runs[0].baselines:
                continue
            for split in ("val", "test"):
                key = split if baseline is None else f"baseline:{baseline}:{split}"
                row = {"protocol": protocol_label(protocol), "model": model, "split": split}
                if several:
                    stats = result.summary[protocol][key]
                    row.update({m: stat_cell(stats[m]) for m, _ in _METRICS})
                else:
                    ev = runs[0].evaluations()[key]
                    for m, _ in _METRICS:
                        wide = m in ("f1", "average_precision")
                        row[m] = value_cell(getattr(ev, m), ev.intervals.get(m) if wide else None)
                rows.append(row)
    return rows


def _published(result) -> list[str]:
    """The report's published figures beside ours, when the data is the real creditcard.csv."""
    data = result.data
    real = (not data["synthetic"] and data["rows"] == REAL_CREDITCARD["rows"]
            and data["frauds"] == REAL_CREDITCARD["frauds"])
    if not real:
        return ["The course report's published figures come from the real `creditcard.csv` "
                f"({REAL_CREDITCARD['rows']:,} rows, {REAL_CREDITCARD['frauds']} frauds); this "
                "data is not it, so they are not shown beside these numbers.", ""]
    rows, basic = [], ("accuracy", "precision", "recall", "f1")
    for protocol in result.config.protocols:
        first = result.runs_of(protocol)[0]
        for split in ("val", "test"):
            theirs, ours = REPORT_FRAUD[(protocol, split)], getattr(first, split)
            rows.append({"protocol": protocol_label(protocol), "split": split,
                         "threshold": first.threshold, **{f"r_{m}": theirs[m] for m in basic},
                         **{f"o_{m}": getattr(ours, m) for m in basic}})
    columns = [("protocol", "Protocol", ""), ("split", "Split", ""),
               ("threshold", "Our threshold", ".4f")]
    for m in basic:
        columns += [(f"r_{m}", f"{m} (report)", ".4f"), (f"o_{m}", f"{m} (ours)", ".4f")]
    variant = ("" if result.config.adasyn_variant == "report" else
               " The report's numbers came from its own ADASYN function; these ran He et al.'s "
               "(`--adasyn-variant report` runs the report's).")
    return ["## The course report's numbers beside ours (real data; ours: seed "
            f"{result.config.seeds[0]}, each protocol at its own threshold)", "",
            markdown_table(rows, columns), "", REPORT_FRAUD_SLIP + variant, ""]


def fraud_report(result) -> str:
    """The Markdown report of one fraud run."""
    config, data = result.config, result.data
    lines = ["# Credit-card fraud detection: ConvNet × ADASYN protocols", "",
             f"Data: `{data['path']}` — {data['rows']:,} rows, {data['frauds']:,} frauds "
             f"({100 * data['frauds'] / data['rows']:.2f}%), SHA-256 "
             f"`{(data['sha256'] or '?')[:16]}…`.", ""]
    if result.synthetic:
        lines += [SYNTHETIC_NOTE, ""]
    epochs_note = "" if config.epochs >= FRAUD_EPOCHS else (
        f" (**fewer than the paper's {FRAUD_EPOCHS}**)")
    threshold_rule = ("the best F1 on validation" if config.threshold == "val-f1"
                      else f"fixed at {config.threshold:g}")
    seeds = ", ".join(map(str, config.seeds))
    split_seeds = ("random_state 50 + seed: a new split per seed" if config.resplit
                   else "random_state 50")
    lines += [
        f"Settings: backend `{result.environment['backend']}`, {config.epochs} epochs"
        f"{epochs_note}, batch {config.batch_size}, Adam {config.learning_rate:g}, seeds {seeds}; "
        f"best epoch by `{config.monitor}` restored; threshold {threshold_rule}; ADASYN "
        f"{_VARIANTS[config.adasyn_variant]}, k = {config.adasyn_k}, beta = "
        f"{config.adasyn_beta:g}; split 60/20/20 ({split_seeds}"
        f"{', stratified' if config.stratify else ''}), scaler fitted on training rows.",
        "",
        "ADASYN ran on the **unscaled** features in adasyn-all (before the split, as the report "
        "did) and on the **scaled** training rows in adasyn-train.",
        "",
        scaling_note(config, result.environment),
        "",
    ]
    if "adasyn-all" in config.protocols:
        lines += [LEAKY_NOTE, ""]
    several = len(config.seeds) > 1
    how = ("mean ± standard deviation (median) over the seeds" if several else
           "one run; F1 and average precision carry a 95% bootstrap interval over the "
           "evaluated rows")
    lines += [
        "## Comparison", "",
        f"Cells: {how}. Average precision is scikit-learn's (step-wise) area under the "
        "precision-recall curve.", "",
        markdown_table(comparison_rows(result),
                       [("protocol", "Protocol", ""), ("model", "Model", ""),
                        ("split", "Split", ""), *((m, h, "") for m, h in _METRICS)]),
        "",
        "![Test precision-recall curves](pr_curves.png)", "",
    ]
    if result.comparisons:
        lines += ["## Is the difference more than noise?", "",
                  "Each protocol minus `none`, on the same untouched test rows; differences are "
                  "means over the seeds.", ""]
        lines += noise_lines(result.comparisons, len(config.seeds), config.resplit, "test rows",
                             extra=_leaked)
        if result.synthetic:
            moved = ("with the seed (initial weights, data order, dropout, ADASYN's draws) and "
                     "with the draw of the test rows" if several
                     else "on another draw of test rows like these")
            lines += [f"On the synthetic sample these intervals say how much the numbers move "
                      f"{moved}; they say nothing about how the protocols compare on real "
                      "transactions.", ""]
    lines += _published(result)
    lines += ["## Per run", ""]
    for run in result.runs:
        c, t, synth = run.counts, run.training, run.synthetic_rows
        lines += [
            f"### {run.label}, seed {run.seed}", "",
            f"- training rows {c['train']['rows']:,} ({c['train']['fraud']:,} fraud, "
            f"{synth['train']:,} synthetic); validation {c['val']['rows']:,} "
            f"({c['val']['fraud']} fraud, {synth['val']:,} synthetic); test {c['test']['rows']:,}"
            f" ({c['test']['fraud']} fraud, {synth['test']:,} synthetic)",
            f"- best of {t.epochs_run}: epoch {t.best_epoch} ({t.monitor} {t.best_value:.4f}); "
            f"{t.train_seconds:.1f} s; {t.samples_per_second or 0:,.0f} samples/s; threshold "
            f"{run.threshold:.4f}" + (f"; resumed after epoch {t.resumed_from}"
                                      if t.resumed_from else ""),
            f"- files: `{run.directory}/model.keras`, `model.json`, `history.csv`, "
            "`history.png`, `confusion_test.png`",
        ]
        if run.clean_test is not None:
            ev = run.clean_test
            lines.append(
                f"- on `none`'s untouched test rows ({ev.n:,}; {run.leaked_rows:,} of them in "
                f"its training rows): F1 {ev.f1:.4f}, average precision "
                f"{value_cell(ev.average_precision)}")
        lines += ["", "Test classification report:", "", "```",
                  run.test.classification_report.rstrip(), "```", ""]
    return "\n".join(lines)


def write_part_plots(result, out) -> None:
    """Each part's ``history.png`` (the restored epoch marked) and confusion matrices."""
    synthetic = " (synthetic data)" if result.synthetic else ""
    for run in result.runs:
        folder, title = Path(out) / run.directory, f"ConvNet, {run.label}, seed {run.seed}"
        plot_history(run.training.history, folder / "history.png", title + synthetic,
                     metrics=("loss", "accuracy", "average_precision"),
                     best_epoch=run.training.best_epoch)
        for name, ev in (("val", run.val), ("test", run.test)):
            plot_confusion_matrix(ev.confusion_matrix, CLASS_NAMES,
                                  folder / f"confusion_{name}.png", f"{title}: {name}{synthetic}")


def write_fraud_outputs(result, out) -> Path:
    """Write every part's plots, ``pr_curves.png``, ``metrics.json`` and ``report.md`` (last)."""
    out = Path(out)
    write_part_plots(result, out)
    first_seed = result.config.seeds[0]
    curves = {r.label: (r.test.y_true, r.test.scores) for r in result.runs if r.seed == first_seed}
    title = "Test precision-recall" + (" (synthetic data)" if result.synthetic else "")
    title += f", seed {first_seed}" if len(result.config.seeds) > 1 else ""
    plot_pr_curves(curves, out / "pr_curves.png", title)
    write_json(out / "metrics.json", result.to_dict())
    return write_text(out / "report.md", fraud_report(result))
