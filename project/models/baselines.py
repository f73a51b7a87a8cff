"""Simple baselines beside the ConvNet, on the same rows and evaluator: does it earn its keep?

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


def fit_baseline(name: str, x, y, seed: int = 0):
    """Fit the baseline ``name`` (:data:`project.settings.BASELINES`) on ``(x, y)``:
    ``logistic-regression`` with ``class_weight="balanced"`` (the rare frauds weigh as much as
    the normal transactions), or ``gradient-boosting``, scikit-learn's
    ``HistGradientBoostingClassifier`` (early stopping on an internal 10%, as by default)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    if name == "logistic-regression":
        model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
    elif name == "gradient-boosting":
        model = HistGradientBoostingClassifier(random_state=seed)
    else:
        raise ValueError(f"unknown baseline {name!r}: choose one of {', '.join(BASELINES)}")
    return model.fit(x, y)
