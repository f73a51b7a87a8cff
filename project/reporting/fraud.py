"""The fraud experiment's ``report.md``: one comparison table across protocols, like the report's."""

from __future__ import annotations

from project.reporting import LEAKY_NOTE, SYNTHETIC_NOTE
from project.reporting.tables import markdown_table

_COLUMNS = [
    ("protocol", "Protocol", ""),
    ("split", "Split", ""),
    ("accuracy", "Accuracy", ".4f"),
    ("precision", "Precision", ".4f"),
    ("recall", "Recall", ".4f"),
    ("f1", "F1", ".4f"),
    ("pr_auc", "PR-AUC", ".4f"),
    ("roc_auc", "ROC-AUC", ".4f"),
]


def comparison_rows(metrics: dict) -> list[dict]:
    """Rows of the comparison table from ``metrics.json``'s ``protocols`` section."""
    rows = []
    for run in metrics["protocols"].values():
        for split in ("val", "test"):
            rows.append({"protocol": run["label"], "split": split, **run[split]})
    return rows


def fraud_report(metrics: dict) -> str:
    """The Markdown report for one ``scripts/fraud.py`` run."""
    data, settings = metrics["data"], metrics["settings"]
    lines = [
        "# Credit-card fraud detection: ConvNet × ADASYN protocols",
        "",
        f"Data: `{data['path']}` — {data['rows']:,} rows, {data['frauds']:,} frauds "
        f"({100 * data['frauds'] / data['rows']:.2f}%).",
        "",
    ]
    if data["synthetic"]:
        lines += [SYNTHETIC_NOTE, ""]
    epochs_note = (
        f" (fewer than the paper's {settings['paper_epochs']})"
        if settings["epochs"] < settings["paper_epochs"] else ""
    )
    lines += [
        f"Backend `{metrics['backend']}`; {settings['epochs']} epochs{epochs_note}, batch "
        f"{settings['batch_size']}, Adam {settings['learning_rate']:g}; best epoch by "
        f"`{settings['monitor']}` restored; decision threshold: {settings['threshold_rule']}; "
        f"{'stratified' if settings['stratify'] else 'unstratified (as the report)'} 60/20/20 split.",
        "",
        "## Comparison",
        "",
        markdown_table(comparison_rows(metrics), _COLUMNS),
        "",
    ]
    if any(run["leaky"] for run in metrics["protocols"].values()):
        lines += [LEAKY_NOTE, ""]
    lines += ["## Runs", ""]
    for name, run in metrics["protocols"].items():
        counts = run["counts"]
        lines += [
            f"### {run['label']}",
            "",
            f"- training rows {counts['train']['rows']:,} ({counts['train']['fraud']:,} fraud, "
            f"{run['synthetic_train_rows']:,} synthetic); validation {counts['val']['rows']:,} "
            f"({counts['val']['fraud']} fraud, {run['synthetic_val_rows']:,} synthetic); test "
            f"{counts['test']['rows']:,} ({counts['test']['fraud']} fraud, "
            f"{run['synthetic_test_rows']:,} synthetic)",
            f"- best epoch {run['best_epoch']} of {run['epochs']}; {run['train_seconds']:.1f} s; "
            f"{run['samples_per_second']:,.0f} samples/s; threshold {run['threshold']:.4f}",
            f"- model `{name}/model.keras`; plots `{name}/history.png`, "
            f"`{name}/confusion_test.png`",
            "",
            "Test classification report:",
            "",
            "```",
            run["test_classification_report"].rstrip(),
            "```",
            "",
        ]
    lines += ["![PR curves on the test split](pr_curves.png)", ""]
    return "\n".join(lines)
