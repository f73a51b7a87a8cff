"""Uncertainty for the reported numbers: bootstrap intervals, paired comparisons, seed summaries.

:func:`bootstrap_intervals` (one run's metrics, over its examples), :func:`paired_bootstrap` and
:func:`mcnemar` (A against B on the same examples), :func:`summarize` (over seeds),
:func:`two_level_bootstrap` (A against B over seeds *and* examples), :func:`holm` (a family of
p-values) and :func:`verdict` (the sentence: "beyond noise" only when both sources are counted).

Everything is NumPy, vectorised over replicates: a replicate is a vector of multinomial counts
(how often each example was drawn) and every metric a count-weighted sum; the ranking metrics
sort the scores once, then need only cumulative sums. The results equal scikit-learn's
``average_precision_score`` / ``roc_auc_score`` with ``sample_weight`` = the counts (tested).

>>> import numpy as np
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
import warnings

import numpy as np

from project.settings import METRICS

N_BOOT = 1000
_CHUNK_CELLS = 2_000_000  # replicates x examples held at once (float64: 16 MB per array)


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
        return {**out, **self._ranking(weights)}

    def _ranking(self, weights: np.ndarray) -> dict:
        """Average precision and ROC-AUC as scikit-learn computes them with ``sample_weight``
        (ROC by the trapezoid rule: ties count one half); NaN where a replicate lacks a class.
        Only groups of tied scores holding a positive move recall: both are sums over those."""
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


def _count_draws(n: int, n_boot: int, seed: int):
    """Bootstrap count vectors (entry i: how often example i was drawn) in the examples' order,
    in chunks of shape (b, n). They depend only on ``(n, seed)``: models scored on the same
    examples get the same resamples."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < n_boot:
        b = min(per_chunk, n_boot - done)
        drawn = rng.integers(0, n, size=(b, n)) + np.arange(b)[:, None] * n
        yield np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


def weighted_metrics(y_true, scores, threshold: float, weights=None) -> dict:
    """Every metric of :data:`METRICS` as ``{metric: float}`` (NaN where undefined) for labels
    in {0, 1}, scores (probability of class 1; predict 1 when ``score >= threshold``) and
    non-negative ``weights`` in the examples' order (None: all ones)."""
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
    """Percentile-bootstrap intervals of every metric over the evaluated examples (arguments as
    :func:`weighted_metrics`): ``{metric: [lo, hi]}``, None where no replicate computes it."""
    ranked = _Ranked(y_true, scores)
    collected = {m: [] for m in METRICS}
    for counts in _count_draws(ranked.n, n_boot, seed):
        for name, values in ranked.metrics(counts[:, ranked.order], threshold).items():
            collected[name].append(values)
    return {m: _percentiles(np.concatenate(v), level) for m, v in collected.items()}


def _difference(a: _Ranked, b: _Ranked, threshold_a, threshold_b, counts) -> np.ndarray:
    """Every metric of A minus B, shape (b, metrics), for ``counts`` (b, n) in examples' order."""
    ma = a.metrics(counts[:, a.order], threshold_a)
    mb = b.metrics(counts[:, b.order], threshold_b)
    return np.stack([ma[m] - mb[m] for m in METRICS], axis=-1)


def paired_bootstrap(
    y_true, scores_a, scores_b, threshold_a: float = 0.5, threshold_b: float = 0.5,
    n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95,
) -> dict:
    """Model A minus model B on the same examples, ``{metric: {"difference": a - b, "ci95":
    [lo, hi]}}``: each replicate scores both models on one resample, so what they have in
    common (the hard and easy examples) cancels out."""
    a, b = _Ranked(y_true, scores_a), _Ranked(y_true, scores_b)
    point = _difference(a, b, threshold_a, threshold_b, np.ones((1, a.n)))[0]
    diffs = np.concatenate([_difference(a, b, threshold_a, threshold_b, counts)
                            for counts in _count_draws(a.n, n_boot, seed)])
    return {m: {"difference": float(point[k]), "ci95": _percentiles(diffs[:, k], level)}
            for k, m in enumerate(METRICS)}


def _seed_widening(n_seeds: int, level: float) -> float:
    """How much a percentile bootstrap over ``n_seeds`` values must be widened to have a
    t-interval's width: t(n-1) / (z * sqrt((n-1)/n)) (Hesterberg's expanded percentile
    interval; unwidened, 5 seeds cover about 85%). 0 for one seed.

    >>> round(_seed_widening(5, 0.95), 3), _seed_widening(1, 0.95)
    (1.584, 0.0)
    """
    from scipy import stats

    if n_seeds < 2:
        return 0.0
    tail = 0.5 + level / 2
    return float(stats.t.ppf(tail, n_seeds - 1)
                 / (stats.norm.ppf(tail) * math.sqrt((n_seeds - 1) / n_seeds)))


def _p_value(replicates: np.ndarray) -> float | None:
    """Two-sided bootstrap p-value of "the difference is 0": twice the smaller share of
    replicates on either side of 0 (+1 keeps it above 0)."""
    values = replicates[np.isfinite(replicates)]
    if values.size == 0:
        return None
    low, high = (np.sum(values <= 0) + 1, np.sum(values >= 0) + 1)
    return float(min(1.0, 2 * min(low, high) / (values.size + 1)))


def two_level_bootstrap(pairs, shared_examples: bool = True, n_boot: int = N_BOOT, seed: int = 0,
                        level: float = 0.95) -> dict:
    """Model A minus model B averaged over seeds, with an interval that counts both sources of
    noise: the training randomness (seeds) and the sampling of the evaluated examples.

    Each replicate resamples the seeds and, with ``shared_examples`` (every seed scored on the
    same test rows), the examples: one resample shared by every seed and both models, since
    the rows' noise does not average out over seeds. The replicate is the point difference plus

    * examples: the seeds' mean difference on the resampled rows minus that on all rows;
    * seeds: the mean over resampled seeds of their differences on all rows minus the mean,
      shrunk by sqrt((s² - i) / s²) (s²: variance of the per-seed differences; i: the
      seed-by-example interaction, which the examples' deviation already counts; the moment
      correction of a crossed design), then widened for few seeds (:func:`_seed_widening`).

    Replicates stay within [-1, 1]. Without ``shared_examples`` (a split per seed) the seeds
    alone are resampled (widened, not shrunk). With one seed this is :func:`paired_bootstrap`.

    ``pairs``: one ``(y_true, scores_a, scores_b, threshold_a, threshold_b)`` per seed. Returns
    ``{metric: {"difference": mean over seeds of a - b, "ci95": [lo, hi], "p_value"}}``.

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> runs = [(y, y * 0.2 + rng.random(400), y * 0.2 + rng.random(400), 0.6, 0.6)
    ...         for _ in range(3)]
    >>> out = two_level_bootstrap(runs, n_boot=200)["accuracy"]
    >>> lo, hi = out["ci95"]
    >>> bool(lo < out["difference"] < hi), 0 < out["p_value"] <= 1
    (True, True)
    >>> one = two_level_bootstrap(runs[:1], n_boot=200)["accuracy"]["ci95"]  # one seed:
    >>> one == paired_bootstrap(*runs[0], n_boot=200)["accuracy"]["ci95"]     # the examples only
    True
    """
    n_seeds = len(pairs)
    ranked = [(_Ranked(y, a), _Ranked(y, b), ta, tb) for y, a, b, ta, tb in pairs]
    point = np.stack([_difference(a, b, ta, tb, np.ones((1, a.n)))[0]
                      for a, b, ta, tb in ranked])  # (seeds, metrics) on all the examples
    center = point.mean(axis=0)
    examples, interaction = np.zeros((n_boot, len(METRICS))), np.zeros(len(METRICS))
    if shared_examples:
        y0 = np.asarray(pairs[0][0]).reshape(-1)
        if any(not np.array_equal(np.asarray(p[0]).reshape(-1), y0) for p in pairs):
            raise ValueError("shared_examples: the seeds were scored on different examples")
        per_seed = np.concatenate([  # (seeds, replicates, metrics), less the point values
            np.stack([_difference(a, b, ta, tb, counts) for a, b, ta, tb in ranked])
            for counts in _count_draws(len(y0), n_boot, seed)], axis=1) - point[:, None]
        examples = per_seed.mean(axis=0)
        if n_seeds > 1:
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN metrics stay NaN
                interaction = np.nanmean(np.nanvar(per_seed - examples, axis=1, ddof=1), axis=0)
    shrink = np.zeros(len(METRICS))
    if n_seeds > 1:
        spread = point.var(axis=0, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            shrink = np.sqrt(np.clip(spread - np.nan_to_num(interaction), 0, None) / spread)
        shrink = np.nan_to_num(shrink) * _seed_widening(n_seeds, level)
    drawn = np.random.default_rng([seed, 1]).integers(0, n_seeds, size=(n_boot, n_seeds))
    times = np.stack([np.bincount(row, minlength=n_seeds) for row in drawn]).astype(np.float64)
    seeds = times @ np.nan_to_num(point) / n_seeds - np.nan_to_num(center)
    replicates = np.clip(center + examples + shrink * seeds, -1, 1)  # differences of shares
    return {m: {"difference": float(center[k]),
                "ci95": _percentiles(replicates[:, k], level),
                "p_value": _p_value(replicates[:, k])}
            for k, m in enumerate(METRICS)}


def holm(p_values) -> list:
    """Holm's step-down adjustment of p-values (None stays None).

    >>> holm([0.01, 0.04, 0.03, None])
    [0.03, 0.06, 0.06, None]
    """
    known = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted, running = list(p_values), 0.0
    for rank, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[i] = round(running, 12)
    return adjusted


def mcnemar(y_true, pred_a, pred_b) -> dict:
    """McNemar's exact test of two classifiers' accuracy on the same examples: ``{"a_only",
    "b_only", "p_value"}`` (examples only A, only B got right; two-sided exact binomial p)."""
    y = np.asarray(y_true).reshape(-1)
    right_a = np.asarray(pred_a).reshape(-1) == y
    right_b = np.asarray(pred_b).reshape(-1) == y
    a_only, b_only = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    n, k = a_only + b_only, min(a_only, b_only)
    # two-sided exact binomial test with p = 1/2: 2 * P(X <= k), capped at 1
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}


def summarize(values, level: float = 0.95) -> dict:
    """``{"mean", "std", "median", "ci95": [lo, hi], "n"}`` over runs (seeds): ``ci95`` is the
    t-interval of the mean; ``std`` and ``ci95`` are None for one run; None values are left out.

    >>> s = summarize([0.80, 0.82, 0.81])
    >>> round(s["mean"], 3), s["n"], round(s["median"], 2)
    (0.81, 3, 0.81)
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


#: What an interval covers, as :func:`verdict` words it.
COVERS = ("both", "examples")


def verdict(difference: float, ci95, what: str, unit: str = "points", scale: float = 100,
            covers: str = "both", p_adjusted: float | None = None, level: float = 0.95) -> str:
    """A plain sentence for a difference and its interval (None: no interval).

    Args:
        covers: ``"both"``: the interval counts the training randomness and the examples
            (:func:`two_level_bootstrap` over several seeds): only then may a difference be
            "beyond noise"; ``"examples"``: one seed, and the sentence says so.
        p_adjusted: the Holm-adjusted p-value of a verdict in a family (None: one that stands
            alone); the call is then made on it.

    >>> verdict(0.021, [-0.004, 0.046], "LoRA − full", "points accuracy")
    'LoRA − full: +2.1 points accuracy, 95% CI [−0.4, +4.6]: not distinguishable from zero'
    >>> verdict(0.05, [0.01, 0.09], "A − B", "points F1", p_adjusted=0.2)
    'A − B: +5.0 points F1, 95% CI [+1.0, +9.0] (Holm-adjusted p = 0.2): not distinguishable from zero after Holm adjustment'
    """

    def fmt(x):
        return f"{x * scale:+.1f}".replace("-", "−")

    if covers not in COVERS:
        raise ValueError(f"covers must be one of {COVERS}, got {covers!r}")
    if ci95 is None:
        return f"{what}: {fmt(difference)} {unit} (no interval: too few examples)"
    lo, hi = ci95
    notes = [] if covers == "both" else ["over these examples only; one seed, so the training "
                                         "randomness is not counted"]
    if p_adjusted is not None:
        notes.append(f"Holm-adjusted p = {p_adjusted:.2g}")
    excludes = not lo <= 0 <= hi
    if excludes and (p_adjusted is None or p_adjusted < 1 - level):
        side = "higher" if lo > 0 else "lower"
        call = f"{side}, beyond noise" if covers == "both" else f"{side} on these examples"
    else:
        call = "not distinguishable from zero" + (" after Holm adjustment" if excludes else "")
    shown = f" ({'; '.join(notes)})" if notes else ""
    return f"{what}: {fmt(difference)} {unit}, {level:.0%} CI [{fmt(lo)}, {fmt(hi)}]{shown}: {call}"
