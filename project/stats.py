"""Uncertainty for the reported numbers: bootstrap intervals, paired comparisons, seed summaries.

Three questions, three tools:

* How precise is one run's metric, given the finite set of examples it was measured on?
  :func:`bootstrap_intervals` resamples the examples (with replacement) and reports the 2.5th and
  97.5th percentiles of each metric: a 95% percentile-bootstrap interval.
* Is model A better than model B *on the same examples*? :func:`paired_bootstrap` resamples the
  examples once per replicate and applies the same resample to both models, so the interval is of
  the difference; :func:`mcnemar` gives the exact McNemar p-value for accuracy.
* How much do results move between seeds? :func:`summarize` gives mean, standard deviation, median
  and a 95% t-interval of the mean over runs.

Everything is NumPy, vectorised over replicates: a replicate is a vector of multinomial counts
(how often each example was drawn), and every metric is computed from count-weighted sums. The
ranking metrics (average precision, ROC-AUC) sort the scores once and then need only cumulative
sums per replicate, so 1,000 replicates over 57,000 examples take a fraction of a second. The
results equal scikit-learn's ``average_precision_score`` / ``roc_auc_score`` with
``sample_weight`` = the counts (tested).

Example:

>>> import numpy as np

from project.settings import METRICS
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 500)
>>> scores = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
>>> ci = bootstrap_intervals(y, scores, threshold=0.5, n_boot=200, seed=0)
>>> lo, hi = ci["accuracy"]
>>> bool(lo < float(np.mean((scores >= 0.5) == y)) < hi)
True
"""

from __future__ import annotations

import math

import numpy as np

from project.settings import METRICS

N_BOOT = 1000
_CHUNK_CELLS = 2_000_000  # replicates x examples held at once (float64: 16 MB per array)


# --- metrics from count-weighted examples -----------------------------------------------------


class _Ranked:
    """Labels and scores sorted by descending score, once, and the groups of tied scores (the
    thresholds of the ranking metrics)."""

    def __init__(self, y_true, scores):
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        self.order = np.argsort(-s, kind="stable")
        self.scores = s[self.order]
        self.y = np.asarray(y_true).astype(bool).reshape(-1)[self.order]
        self.n = len(s)
        # Groups of tied scores: the group of each sorted example, and for the groups holding a
        # positive example, where their positives start (in the list of positives) and the first
        # and last sorted positions of the group.
        group = np.r_[0, np.cumsum(np.diff(self.scores) != 0)]
        last = np.r_[np.flatnonzero(np.diff(self.scores) != 0), self.n - 1]
        first = np.r_[0, last[:-1] + 1]
        self._positives = np.flatnonzero(self.y)
        pos_groups = group[self._positives]
        self._group_starts = np.flatnonzero(np.r_[True, np.diff(pos_groups) != 0])[: len(pos_groups)]
        kept = pos_groups[self._group_starts]
        self._group_ends, self._group_firsts = last[kept], first[kept]

    def metrics(self, weights: np.ndarray, threshold: float) -> dict:
        """Every metric for each row of ``weights`` (B, n), the weights in sorted order."""
        y, pred = self.y, self.scores >= threshold
        tp = weights @ (y & pred).astype(np.float64)
        fp = weights @ (~y & pred).astype(np.float64)
        fn = weights @ (y & ~pred).astype(np.float64)
        total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {
                "accuracy": (total - fp - fn) / total,
                "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
                "recall": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
                "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
            }
        out.update(self._ranking(weights))
        return out

    def _ranking(self, weights: np.ndarray) -> dict:
        """Average precision and ROC-AUC as scikit-learn computes them with ``sample_weight``
        (one step per distinct score; ROC by the trapezoid rule, i.e. ties count one half). NaN
        where a replicate has no positive (or, for ROC-AUC, no negative) example.

        Only groups of tied scores that hold a positive example move recall, so both metrics are
        sums over those groups: one cumulative sum of the weights, and the positives' weights.
        """
        seen = np.cumsum(weights, axis=1)  # weight seen up to each sorted position
        pos_w = weights[:, self._positives]
        tp_group = np.add.reduceat(pos_w, self._group_starts, axis=1) if pos_w.size else pos_w
        tps = np.cumsum(tp_group, axis=1)
        seen_end = seen[:, self._group_ends]
        seen_before = np.where(self._group_firsts > 0, seen[:, self._group_firsts - 1], 0.0)
        n_pos = pos_w.sum(axis=1)
        n_neg = seen[:, -1] - n_pos
        neg_in = (seen_end - seen_before) - tp_group
        neg_after = n_neg[:, None] - (seen_end - tps)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(seen_end > 0, tps / seen_end, 1.0)
            ap = np.sum(tp_group * precision, axis=1) / n_pos
            auc = np.sum(tp_group * (neg_after + 0.5 * neg_in), axis=1) / (n_pos * n_neg)
        ap[n_pos == 0] = np.nan
        auc[(n_pos == 0) | (n_neg == 0)] = np.nan
        return {"average_precision": ap, "roc_auc": auc}

    def replicates(self, n_boot: int, seed: int):
        """Bootstrap count vectors in sorted order, in chunks: each replicate draws ``n``
        examples uniformly with replacement; entry i counts how often sorted example i was drawn.
        The draws depend only on ``(n, seed)``, not on the scores, so two models scored on the
        same examples get the same resamples."""
        rng = np.random.default_rng(seed)
        rank = np.empty(self.n, np.int64)
        rank[self.order] = np.arange(self.n)
        per_chunk = max(1, _CHUNK_CELLS // max(self.n, 1))
        done = 0
        while done < n_boot:
            b = min(per_chunk, n_boot - done)
            drawn = rank[rng.integers(0, self.n, size=(b, self.n))] + np.arange(b)[:, None] * self.n
            yield np.bincount(drawn.ravel(), minlength=b * self.n).reshape(b, self.n).astype(
                np.float64
            )
            done += b


def weighted_metrics(y_true, scores, threshold: float, weights=None) -> dict:
    """Every metric of :data:`METRICS` for one weighting of the examples.

    Args:
        y_true: labels in {0, 1}, shape (n,).
        scores: probability of class 1, shape (n,).
        threshold: predict 1 when ``score >= threshold``.
        weights: (n,) non-negative weights (e.g. bootstrap counts), in the examples' order;
            None: all ones.

    Returns:
        ``{metric: float}`` (NaN where a metric is undefined, e.g. ROC-AUC with one class).
    """
    ranked = _Ranked(y_true, scores)
    w = np.ones(ranked.n) if weights is None else np.asarray(weights, dtype=np.float64)
    return {k: float(v[0]) for k, v in ranked.metrics(w[ranked.order][None, :], threshold).items()}


def _percentiles(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def bootstrap_intervals(
    y_true, scores, threshold: float, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> dict:
    """95% percentile-bootstrap intervals of every metric, over the evaluated examples.

    Args:
        y_true, scores, threshold: as for :func:`weighted_metrics`.
        n_boot: replicates (1,000 by default).
        seed: the resampling seed (the same seed gives the same interval).
        level: coverage of the interval.

    Returns:
        ``{metric: [lo, hi]}``; None for a metric no replicate could compute (e.g. ROC-AUC with
        one class).
    """
    ranked = _Ranked(y_true, scores)
    collected = {m: [] for m in METRICS}
    for weights in ranked.replicates(n_boot, seed):
        for name, values in ranked.metrics(weights, threshold).items():
            collected[name].append(values)
    return {m: _percentiles(np.concatenate(v), level) for m, v in collected.items()}


def paired_bootstrap(
    y_true, scores_a, scores_b, threshold_a: float = 0.5, threshold_b: float = 0.5,
    n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95,
) -> dict:
    """Model A minus model B on the same examples: the difference and its bootstrap interval.

    Each replicate draws one resample of the examples and scores both models on it, so what the
    two have in common (the hard and easy examples) cancels out.

    Returns:
        ``{metric: {"difference": a - b, "ci95": [lo, hi]}}`` for every metric.
    """
    ranked_a, ranked_b = _Ranked(y_true, scores_a), _Ranked(y_true, scores_b)
    point_a = weighted_metrics(y_true, scores_a, threshold_a)
    point_b = weighted_metrics(y_true, scores_b, threshold_b)
    # Draw the resamples in A's sorted order, then carry the same counts over to B's order.
    a_to_b = np.empty(ranked_a.n, np.int64)
    a_to_b[ranked_b.order] = np.arange(ranked_b.n)
    a_to_b = a_to_b[ranked_a.order]  # position in B's order of each of A's sorted examples
    diffs = {m: [] for m in METRICS}
    for weights_a in ranked_a.replicates(n_boot, seed):
        weights_b = np.empty_like(weights_a)
        weights_b[:, a_to_b] = weights_a
        a = ranked_a.metrics(weights_a, threshold_a)
        b = ranked_b.metrics(weights_b, threshold_b)
        for m in METRICS:
            diffs[m].append(a[m] - b[m])
    return {
        m: {"difference": point_a[m] - point_b[m],
            "ci95": _percentiles(np.concatenate(diffs[m]), level)}
        for m in METRICS
    }


def mcnemar(y_true, pred_a, pred_b) -> dict:
    """McNemar's exact test for two classifiers' accuracy on the same examples.

    Returns:
        ``{"a_only": n, "b_only": n, "p_value": p}``: examples only A got right, only B got right,
        and the two-sided exact binomial p-value of that split.
    """
    y = np.asarray(y_true).reshape(-1)
    right_a = np.asarray(pred_a).reshape(-1) == y
    right_b = np.asarray(pred_b).reshape(-1) == y
    a_only, b_only = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    n, k = a_only + b_only, min(a_only, b_only)
    # two-sided exact binomial test with p = 1/2: 2 * P(X <= k), capped at 1
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}


def summarize(values, level: float = 0.95) -> dict:
    """Mean, sample standard deviation, median and a t-interval of the mean over runs (seeds).

    Example:

    >>> s = summarize([0.80, 0.82, 0.81])
    >>> round(s["mean"], 3), s["n"], round(s["median"], 2)
    (0.81, 3, 0.81)

    Returns:
        ``{"mean", "std", "median", "ci95": [lo, hi], "n"}``; ``std`` and ``ci95`` are None for a
        single run (no spread to measure), and None values are left out of every statistic.
    """
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return {"mean": None, "std": None, "median": None, "ci95": None, "n": 0}
    mean, median = float(v.mean()), float(np.median(v))
    if n == 1:
        return {"mean": mean, "std": None, "median": median, "ci95": None, "n": 1}
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "median": median, "ci95": [mean - half, mean + half], "n": n}


def verdict(difference: float, ci95, what: str, unit: str = "points", scale: float = 100) -> str:
    """A plain sentence for a difference and its interval.

    Example:

    >>> verdict(0.021, [-0.004, 0.046], "LoRA − full", "points accuracy")
    'LoRA − full: +2.1 points accuracy, 95% CI [−0.4, +4.6]: not distinguishable from zero'
    """

    def fmt(x):
        return f"{x * scale:+.1f}".replace("-", "−")

    if ci95 is None:
        return f"{what}: {fmt(difference)} {unit} (no interval: too few examples)"
    lo, hi = ci95
    if lo <= 0 <= hi:
        call = "not distinguishable from zero"
    else:
        call = "higher, beyond noise" if lo > 0 else "lower, beyond noise"
    return f"{what}: {fmt(difference)} {unit}, 95% CI [{fmt(lo)}, {fmt(hi)}]: {call}"
