"""Metrics shared by the fraud ConvNet and the QQP classifier.

Two halves:

* Keras metrics to pass to ``model.compile`` (tracked per epoch by ``fit``):
  :func:`binary_metrics` for a sigmoid output, :func:`sparse_metrics` for class logits.
* :func:`evaluation_report`, computed once on NumPy predictions after training: the numbers that go
  into ``metrics.json`` and ``report.md`` (scikit-learn's classification report, the confusion
  matrix, PR-AUC, ROC-AUC, and the decision threshold used).

Example:

>>> import numpy as np
>>> from project.training.metrics import evaluation_report
>>> r = evaluation_report(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.7, 0.9]))
>>> r["recall"], r["confusion_matrix"]
(1.0, [[1, 1], [0, 2]])
"""

from __future__ import annotations

import keras
import numpy as np
from sklearn import metrics as skm


def binary_metrics() -> list[keras.metrics.Metric]:
    """Keras metrics for a (batch, 1) sigmoid output: accuracy, precision, recall, F1, PR/ROC-AUC."""
    return [
        keras.metrics.BinaryAccuracy(name="accuracy"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
        keras.metrics.F1Score(average="micro", threshold=0.5, name="f1"),
        keras.metrics.AUC(curve="PR", name="pr_auc"),
        keras.metrics.AUC(curve="ROC", name="roc_auc"),
    ]


def sparse_metrics(from_logits: bool = True) -> list[keras.metrics.Metric]:
    """Keras metrics for integer labels and (batch, classes) outputs (logits by default)."""
    del from_logits  # accuracy is the argmax either way; kept for a symmetric call site
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def positive_scores(outputs) -> np.ndarray:
    """Probability of the positive class from model outputs.

    A (n, 1) or (n,) output is taken as a sigmoid probability; a (n, 2) output as logits and turned
    into softmax probabilities of class 1.
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1 or out.shape[-1] == 1:
        return out.reshape(-1)
    if out.shape[-1] == 2:
        shifted = out - out.max(axis=-1, keepdims=True)
        prob = np.exp(shifted)
        return prob[:, 1] / prob.sum(axis=-1)
    raise ValueError(f"expected 1 or 2 output columns, got shape {out.shape}")


def choose_threshold(y_true, scores) -> float:
    """The decision threshold that maximises F1 on (validation) data.

    Returns 0.5 when the data has no positive example (nothing to choose from).
    """
    y_true = np.asarray(y_true).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y_true.sum() == 0:
        return 0.5
    precision, recall, thresholds = skm.precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point has no threshold
    return float(thresholds[best])


def evaluation_report(y_true, scores, threshold: float = 0.5, class_names=("0", "1")) -> dict:
    """Everything we report about binary predictions, as plain Python values.

    Args:
        y_true: labels in {0, 1}, shape (n,).
        scores: probability of class 1, shape (n,) (see :func:`positive_scores`).
        threshold: predict 1 when ``score >= threshold``.
        class_names: names of class 0 and class 1 in the per-class table.

    Returns:
        A dict with ``accuracy``, ``precision``, ``recall``, ``f1`` (of class 1), ``pr_auc``
        (average precision), ``roc_auc``, ``confusion_matrix`` (rows: true, columns: predicted),
        ``threshold``, ``per_class`` ({name: {precision, recall, f1, support}}), ``n``, and
        ``classification_report`` (scikit-learn's text).
    """
    y_true = np.asarray(y_true).astype(int).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    y_pred = (scores >= threshold).astype(int)
    names = [str(c) for c in class_names]
    per_class = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1], zero_division=0
    )
    both_classes = len(np.unique(y_true)) == 2
    return {
        "n": int(y_true.size),
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(per_class[0][1]),
        "recall": float(per_class[1][1]),
        "f1": float(per_class[2][1]),
        "pr_auc": float(skm.average_precision_score(y_true, scores)) if both_classes else None,
        "roc_auc": float(skm.roc_auc_score(y_true, scores)) if both_classes else None,
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
        "per_class": {
            name: {
                "precision": float(per_class[0][i]),
                "recall": float(per_class[1][i]),
                "f1": float(per_class[2][i]),
                "support": int(per_class[3][i]),
            }
            for i, name in enumerate(names)
        },
        "classification_report": skm.classification_report(
            y_true, y_pred, labels=[0, 1], target_names=names, digits=4, zero_division=0
        ),
    }
