"""Simple baselines beside the ConvNet: does the network earn its keep?

Two scikit-learn classifiers, fitted on the same (scaled, possibly oversampled) training rows as
the ConvNet of the same protocol and scored by the same evaluator:

* ``logistic-regression``: ``LogisticRegression(class_weight="balanced")``, so the rare frauds
  weigh as much as the normal transactions;
* ``gradient-boosting``: ``HistGradientBoostingClassifier``, scikit-learn's fast gradient-boosted
  trees (early stopping on an internal 10% of the training rows, as by default).

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(400, 3)); y = (x[:, 0] > 1).astype(int)
>>> model = fit_baseline("logistic-regression", x, y, seed=0)
>>> model.predict_proba(x).shape
(400, 2)
"""

from __future__ import annotations

from project.settings import BASELINES


def make_baseline(name: str, seed: int = 0):
    """An unfitted baseline classifier by name (see :data:`project.settings.BASELINES`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "logistic-regression":
        return LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
    if name == "gradient-boosting":
        return HistGradientBoostingClassifier(random_state=seed)
    raise ValueError(f"unknown baseline {name!r}: choose one of {', '.join(BASELINES)}")


def fit_baseline(name: str, x, y, seed: int = 0):
    """Fit the baseline ``name`` on ``(x, y)``; returns the fitted estimator."""
    return make_baseline(name, seed).fit(x, y)
