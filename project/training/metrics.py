"""Evaluation shared by the fraud ConvNet and the QQP classifier: one report from predictions.

:func:`evaluate_scores` turns labels and class-1 probabilities into an :class:`Evaluation`:
accuracy, precision, recall and F1 of class 1 at a threshold, average precision and ROC-AUC,
the confusion matrix, a per-class table, the loss, and a 95% bootstrap interval for every metric
(:mod:`project.stats`). After every epoch :func:`epoch_logs` computes the same numbers (to
1e-12, tested) without the tables, so the number that picks the best epoch is the one reported.
``average_precision`` is scikit-learn's step-wise average precision (not Keras's interpolated
``AUC(curve="PR")``).

>>> import numpy as np
>>> e = evaluate_scores(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9]), n_boot=0)
>>> e.recall, e.confusion_matrix
(1.0, [[1, 1], [0, 2]])
"""

from __future__ import annotations

import dataclasses

import numpy as np

from project.settings import METRICS
from project.stats import N_BOOT, bootstrap_intervals

_EPS = 1e-7  # Keras's epsilon for probabilities in binary cross-entropy


def positive_scores(outputs) -> np.ndarray:
    """Probability of the positive class: a (n, 1) or (n,) output as it is (sigmoid), a (n, 2)
    output's softmax of class 1 (logits)."""
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1 or out.shape[-1] == 1:
        return out.reshape(-1)
    if out.shape[-1] == 2:
        shifted = out - out.max(axis=-1, keepdims=True)
        prob = np.exp(shifted)
        return prob[:, 1] / prob.sum(axis=-1)
    raise ValueError(f"expected 1 or 2 output columns, got shape {out.shape}")


def binary_cross_entropy(y_true, probabilities) -> float:
    """Mean binary cross-entropy of sigmoid outputs, clipped as Keras clips them."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(-1), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def softmax_cross_entropy(y_true, logits) -> float:
    """Mean cross-entropy of integer labels against class logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_prob = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    y = np.asarray(y_true).astype(int).reshape(-1)
    return float(-np.mean(log_prob[np.arange(len(y)), y]))


def choose_threshold(y_true, scores) -> float:
    """The decision threshold that maximises F1 on (validation) data; 0.5 with no positive."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y_true.sum() == 0:
        return 0.5
    precision, recall, thresholds = skm.precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point has no threshold
    return float(thresholds[best])


@dataclasses.dataclass
class Evaluation:
    """One model scored on one set of examples: precision, recall and F1 are class 1's at the
    threshold (predict 1 when score >= it); average precision and ROC-AUC are None with a single
    class; ``confusion_matrix`` rows are true classes; ``intervals``: ``{metric: [lo, hi]}``, 95%
    bootstrap (empty if not asked); ``y_true`` and ``scores`` are not written to JSON."""

    n: int
    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    average_precision: float | None
    roc_auc: float | None
    loss: float | None
    confusion_matrix: list
    per_class: dict
    intervals: dict
    classification_report: str
    y_true: np.ndarray = dataclasses.field(repr=False)
    scores: np.ndarray = dataclasses.field(repr=False)

    def to_dict(self) -> dict:
        """Plain values for metrics.json (labels and scores left out)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("y_true", "scores")}

    def epoch_logs(self, prefix: str = "val_") -> dict:
        """The numbers logged per epoch: ``{"val_loss", "val_accuracy", ...}`` (None skipped)."""
        values = {"loss": self.loss, **{m: getattr(self, m) for m in METRICS}}
        return {prefix + k: float(v) for k, v in values.items() if v is not None}


def epoch_logs(y_true, scores, threshold: float = 0.5, loss: float | None = None,
               prefix: str = "val_") -> dict:
    """What :meth:`Evaluation.epoch_logs` holds, in NumPy from one sort and the confusion counts:
    :func:`evaluate_scores`'s numbers (to 1e-12) at a tenth of its cost, for every epoch.

    >>> logs = epoch_logs(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9]))
    >>> logs["val_recall"], logs["val_precision"], logs["val_roc_auc"]
    (1.0, 0.6666666666666666, 1.0)
    """
    y = np.asarray(y_true).astype(int).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    predicted = scores >= threshold
    tp = int(np.count_nonzero(predicted & (y == 1)))
    fp, positives = int(np.count_nonzero(predicted)) - tp, int(np.count_nonzero(y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    values = {"loss": loss, "accuracy": (y.size - fp - (positives - tp)) / y.size,
              "precision": precision, "recall": recall,
              "f1": 2 * tp / (2 * tp + fp + positives - tp) if tp else 0.0,
              "average_precision": None, "roc_auc": None}
    if 0 < positives < y.size:  # scikit-learn's step-wise AP and trapezoidal ROC-AUC
        order = np.argsort(-scores, kind="mergesort")
        last = np.r_[np.flatnonzero(np.diff(scores[order])), y.size - 1]  # per distinct score
        tps = np.cumsum(y[order])[last].astype(np.float64)
        fps = last + 1 - tps
        values["average_precision"] = float(np.sum(np.diff(np.r_[0.0, tps / positives])
                                                   * tps / (tps + fps)))
        tpr, fpr = np.r_[0.0, tps] / positives, np.r_[0.0, fps] / (y.size - positives)
        values["roc_auc"] = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return {prefix + k: float(v) for k, v in values.items() if v is not None}


def evaluate_scores(y_true, scores, threshold: float = 0.5, class_names=("0", "1"),
                    loss: float | None = None, n_boot: int = N_BOOT, seed: int = 0) -> Evaluation:
    """Everything we report about binary predictions: labels ``y_true`` in {0, 1}, ``scores``
    the probability of class 1 (:func:`positive_scores`), ``class_names`` for the per-class
    table, the model's ``loss`` if known, ``n_boot`` bootstrap replicates (0: no intervals)
    seeded by ``seed``."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(int).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    y_pred = (scores >= threshold).astype(int)
    names = [str(c) for c in class_names]
    per_class = skm.precision_recall_fscore_support(y_true, y_pred, labels=[0, 1],
                                                    zero_division=0)
    both_classes = len(np.unique(y_true)) == 2
    return Evaluation(
        n=int(y_true.size), threshold=float(threshold),
        accuracy=float(skm.accuracy_score(y_true, y_pred)), precision=float(per_class[0][1]),
        recall=float(per_class[1][1]), f1=float(per_class[2][1]),
        average_precision=(float(skm.average_precision_score(y_true, scores))
                           if both_classes else None),
        roc_auc=float(skm.roc_auc_score(y_true, scores)) if both_classes else None,
        loss=loss,
        confusion_matrix=skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
        per_class={name: {"precision": float(per_class[0][i]), "recall": float(per_class[1][i]),
                          "f1": float(per_class[2][i]), "support": int(per_class[3][i])}
                   for i, name in enumerate(names)},
        intervals=bootstrap_intervals(y_true, scores, threshold, n_boot, seed) if n_boot else {},
        classification_report=skm.classification_report(
            y_true, y_pred, labels=[0, 1], target_names=names, digits=4, zero_division=0),
        y_true=y_true, scores=scores)
