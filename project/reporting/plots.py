"""Plots for the reports (matplotlib, no screen needed). Every function writes a PNG atomically.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "loss.png"
>>> plot_history({"loss": [1, .5], "val_loss": [1.1, .7]}, path, "Loss", metrics=("loss",),
...              best_epoch=2)
>>> path.read_bytes()[:4] == b"\\x89PNG"
True
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve  # noqa: E402

from project.io import atomic_path  # noqa: E402


def save_figure(fig, path) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_history(history: dict, path, title: str, metrics=("loss", "accuracy"),
                 best_epoch: int | None = None) -> None:
    """One panel per metric: the training curve and, where logged, the validation curve; the
    restored best epoch is marked with a vertical line."""
    metrics = [m for m in metrics if m in history or f"val_{m}" in history]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        for key, style in ((name, "-o"), (f"val_{name}", "--s")):
            if key in history:
                values = history[key]
                ax.plot(range(1, len(values) + 1), values, style, ms=3, label=key)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", ls=":", lw=1, label=f"best: epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion_matrix(cm, labels, path, title: str) -> None:
    """A 2×2 (or n×n) confusion matrix with counts; rows are true classes."""
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center",
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def plot_pr_curves(curves: dict, path, title: str) -> None:
    """Precision-recall curves: ``curves`` maps a label to ``(y_true, scores)``; each legend entry
    carries its average precision (AP)."""
    fig, ax = plt.subplots(figsize=(5.4, 4.2))
    for label, (y_true, scores) in curves.items():
        precision, recall, _ = precision_recall_curve(y_true, scores)
        ap = average_precision_score(y_true, scores)
        ax.step(recall, precision, where="post", label=f"{label} (AP {ap:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def plot_length_histogram(choice, path, title: str = "Tokens per question") -> None:
    """Histograms of question1 and question2 token counts of a
    :class:`~project.data.qqp_length.LengthChoice`, with the chosen length in the title."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    top = int(max(choice.question1_tokens.max(), choice.question2_tokens.max()))
    bins = np.arange(0, top + 2) if top <= 80 else 60
    ax.hist(choice.question1_tokens, bins=bins, alpha=0.55, label="question1")
    ax.hist(choice.question2_tokens, bins=bins, alpha=0.55, label="question2")
    ax.set(xlabel="tokens (no special tokens)", ylabel="questions")
    how = "given" if choice.explicit else f"max+max+10 = {choice.rule_length}, cap {choice.max_length}"
    ax.set_title(f"{title}; pair length {choice.sequence_length} ({how})", fontsize=9)
    ax.legend()
    save_figure(fig, path)
