"""Bootstrap intervals, paired comparisons, McNemar and seed summaries (project.stats)."""

import numpy as np
import pytest
from sklearn import metrics as skm

from project.stats import (
    METRICS,
    bootstrap_intervals,
    mcnemar,
    paired_bootstrap,
    summarize,
    verdict,
    weighted_metrics,
)

pytestmark = pytest.mark.backend_independent  # no Keras: make test runs it once


def _data(n, seed=0, positive_rate=0.3, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_rate).astype(int)
    s = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    return y, (np.round(s, 1) if ties else s)


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_equal_scikit_learn_with_sample_weight(ties):
    y, s = _data(300, seed=1, ties=ties)
    w = np.random.default_rng(2).integers(0, 4, len(y)).astype(float)
    got = weighted_metrics(y, s, 0.5, w)
    pred = (s >= 0.5).astype(int)
    expected = {
        "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
        "precision": skm.precision_score(y, pred, sample_weight=w),
        "recall": skm.recall_score(y, pred, sample_weight=w),
        "f1": skm.f1_score(y, pred, sample_weight=w),
        "average_precision": skm.average_precision_score(y, s, sample_weight=w),
        "roc_auc": skm.roc_auc_score(y, s, sample_weight=w),
    }
    for name in METRICS:
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name


def test_interval_contains_the_estimate_and_narrows_with_more_data():
    widths = []
    for n in (200, 3200):
        y, s = _data(n, seed=3)
        point = weighted_metrics(y, s, 0.5)
        ci = bootstrap_intervals(y, s, 0.5, n_boot=400, seed=0)
        for name in METRICS:
            lo, hi = ci[name]
            assert lo <= point[name] <= hi, (name, n)
        widths.append({m: ci[m][1] - ci[m][0] for m in METRICS})
    for name in METRICS:  # 16x the data: about a quarter of the width
        assert widths[1][name] < 0.5 * widths[0][name], name


def test_same_seed_same_interval_and_undefined_metrics_are_none():
    y, s = _data(150, seed=4)
    assert bootstrap_intervals(y, s, 0.5, 200, seed=7) == bootstrap_intervals(y, s, 0.5, 200, 7)
    ci = bootstrap_intervals(np.zeros(20, int), np.linspace(0, 1, 20), 0.5, n_boot=50)
    assert ci["roc_auc"] is None and ci["average_precision"] is None


def test_paired_bootstrap_of_a_model_with_itself_is_exactly_zero():
    y, s = _data(300, seed=5)
    result = paired_bootstrap(y, s, s, n_boot=200)
    for name in METRICS:
        assert result[name]["difference"] == 0 and result[name]["ci95"] == [0.0, 0.0]


def test_paired_bootstrap_sees_a_real_difference_that_unpaired_noise_would_hide():
    rng = np.random.default_rng(6)
    y = (rng.random(2000) < 0.5).astype(int)
    base = rng.random(2000)
    better = np.clip(base + 0.08 * (2 * y - 1), 0, 1)  # the same noise, nudged the right way
    result = paired_bootstrap(y, better, base, n_boot=400)
    lo, hi = result["accuracy"]["ci95"]
    assert 0 < lo <= result["accuracy"]["difference"] <= hi


def test_mcnemar_counts_discordant_pairs_and_its_exact_p_value():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    a = np.array([1, 1, 1, 1, 0, 0, 0, 1])  # 7 right
    b = np.array([0, 0, 1, 1, 0, 0, 0, 0])  # 6 right
    out = mcnemar(y, a, b)
    assert (out["a_only"], out["b_only"]) == (2, 1)
    assert out["p_value"] == pytest.approx(1.0)  # 2 * P(X <= 1 | n=3) = 2 * 4/8, capped at 1
    assert mcnemar(y, a, a)["p_value"] == 1.0


def test_summarize_shape_and_values():
    s = summarize([0.1, 0.2, 0.3, 0.4, 0.5])
    assert set(s) == {"mean", "std", "median", "ci95", "n"} and s["n"] == 5
    assert s["mean"] == pytest.approx(0.3) and s["median"] == pytest.approx(0.3)
    assert s["std"] == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4, 0.5], ddof=1))
    lo, hi = s["ci95"]
    assert lo < 0.3 < hi and hi - 0.3 == pytest.approx(2.776445 * s["std"] / np.sqrt(5), rel=1e-5)
    one = summarize([0.7])
    assert one["std"] is None and one["ci95"] is None and one["mean"] == 0.7


def test_verdict_says_whether_zero_is_inside():
    assert "not distinguishable from zero" in verdict(0.01, [-0.01, 0.03], "A − B", "points")
    assert "higher, beyond noise" in verdict(0.05, [0.01, 0.09], "A − B", "points")
    assert "lower, beyond noise" in verdict(-0.05, [-0.09, -0.01], "A − B", "points")
