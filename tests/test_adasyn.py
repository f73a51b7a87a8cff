"""ADASYN: against imbalanced-learn as an oracle, against geometry, and its contract.

imbalanced-learn is only a test-time oracle here; the sampler itself never imports it.
"""

from __future__ import annotations

import doctest
import subprocess
import sys
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.neighbors import NearestNeighbors

from project.sampling import ADASYN
from project.sampling import adasyn as adasyn_module

K = 5


def two_classes(n_major=300, n_minor=40, d=3, seed=0):
    """Majority N(0, 1); minority N(1.2, 0.8): some minority points sit inside the majority."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0.0, 1.0, (n_major, d)), rng.normal(1.2, 0.8, (n_minor, d))])
    y = np.array([0] * n_major + [1] * n_minor)
    order = rng.permutation(len(y))
    return X[order], y[order]


def three_classes(seed=0):
    rng = np.random.default_rng(seed)
    sizes, centres = (300, 60, 35), (0.0, 1.5, -1.5)
    X = np.vstack([rng.normal(c, 1.0, (n, 3)) for n, c in zip(sizes, centres, strict=True)])
    y = np.repeat([0, 1, 2], sizes)
    return X, y


class ZeroSteps(np.random.RandomState):
    """A RandomState whose ``uniform`` is all zeros: each synthetic point lands on its base point.

    Both samplers draw lambda with ``random_state.uniform``, so with this every synthetic row is an
    exact copy of the minority point it was made from, and per-point counts can be read off the
    output of either sampler without trusting its internals.
    """

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.zeros(size)


def counts_per_point(X, y, label, X_new):
    """How many rows of ``X_new`` are exact copies of each ``X[y == label]`` row, in order."""
    points = X[y == label]
    index = {row.tobytes(): i for i, row in enumerate(points)}
    assert len(index) == len(points), "test data must have distinct minority points"
    counts = np.zeros(len(points), dtype=int)
    for row in X_new:
        counts[index[row.tobytes()]] += 1
    return counts


def minority_neighbours(points, k):
    """Each point's k nearest other points, by scikit-learn's exact brute force."""
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(points)
    return nn.kneighbors(points, return_distance=False)[:, 1:]


def distance_to_segment(p, a, b):
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / max(np.dot(ab, ab), 1e-300), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


def on_some_minority_segment(X, y, label, new_points, k=K, tol=1e-5):
    """For each new point: does it lie on a segment x_i -> x_j, x_j one of x_i's k minority NN?"""
    points = X[y == label]
    nbrs = minority_neighbours(points, k)
    a = np.repeat(points, k, axis=0)[None]  # (1, pairs, d)
    ab = points[nbrs.ravel()][None] - a
    p = np.asarray(new_points)[:, None]  # (points, 1, d)
    t = np.clip(np.sum((p - a) * ab, axis=2) / np.maximum(np.sum(ab * ab, axis=2), 1e-300), 0, 1)
    gap = np.linalg.norm(p - (a + t[..., None] * ab), axis=2)
    return gap.min(axis=1) <= tol


# --- imbalanced-learn as the oracle --------------------------------------------------------------


@pytest.mark.parametrize("make", [two_classes, three_classes], ids=["binary", "multiclass"])
def test_synthetic_count_per_class_matches_imblearn(make):
    imblearn_over = pytest.importorskip("imblearn.over_sampling")
    X, y = make()
    theirs = imblearn_over.ADASYN(random_state=0)
    _, y_theirs = theirs.fit_resample(X, y)
    ours = ADASYN(random_state=0)
    _, y_ours = ours.fit_resample(X, y)

    assert ours.sampling_strategy_ == dict(theirs.sampling_strategy_)
    before = np.bincount(y)
    for label, n_new in theirs.sampling_strategy_.items():
        # ours makes exactly the G imbalanced-learn asks for ...
        assert np.sum(y_ours == label) - before[label] == n_new
        # ... and imbalanced-learn's per-point rounding misses it by at most half a sample a point
        assert abs(np.sum(y_theirs == label) - before[label] - n_new) <= np.sum(y == label) / 2
    assert np.sum(y_ours == np.argmax(before)) == before.max()


@pytest.mark.parametrize("make", [two_classes, three_classes], ids=["binary", "multiclass"])
def test_per_point_counts_agree_with_imblearn(make):
    imblearn_over = pytest.importorskip("imblearn.over_sampling")
    X, y = make()
    n = len(y)
    X_theirs, y_theirs = imblearn_over.ADASYN(random_state=ZeroSteps(1)).fit_resample(X, y)
    ours = ADASYN(random_state=ZeroSteps(1))
    X_ours, y_ours = ours.fit_resample(X, y)
    for label in ours.sampling_strategy_:
        theirs_g = counts_per_point(X, y, label, X_theirs[n:][y_theirs[n:] == label])
        ours_g = counts_per_point(X, y, label, X_ours[n:][y_ours[n:] == label])
        assert np.corrcoef(ours_g, theirs_g)[0, 1] > 0.99
        # same weights r_i; only the rounding differs (floor + largest remainder vs rint)
        assert np.abs(ours_g - theirs_g).max() <= 1
        # and the attribute tells the truth
        np.testing.assert_array_equal(ours.n_synthetic_per_sample_[label], ours_g)


@pytest.mark.parametrize("make", [two_classes, three_classes], ids=["binary", "multiclass"])
def test_synthetic_points_lie_on_minority_segments(make):
    X, y = make()
    n = len(y)
    sampler = ADASYN(random_state=3)
    X_res, y_res = sampler.fit_resample(X, y)
    for label in sampler.sampling_strategy_:
        new = X_res[n:][y_res[n:] == label]
        assert len(new) > 0
        assert on_some_minority_segment(X, y, label, new).all()

    # The recorded start and end of each point: a true minority neighbour, and on that segment.
    neighbours = {c: minority_neighbours(X[y == c], K) for c in sampler.sampling_strategy_}
    for p, i, j in zip(
        X_res[n:], sampler.base_indices_, sampler.neighbor_indices_, strict=True
    ):
        assert y[i] == y[j]
        assert distance_to_segment(p, X[i], X[j]) <= 1e-9
        rows = np.flatnonzero(y == y[i])
        assert j in rows[neighbours[y[i]][np.searchsorted(rows, i)]]


def test_segment_check_can_fail():
    X, y = two_classes()
    sampler = ADASYN(random_state=3)
    X_res, _ = sampler.fit_resample(X, y)
    off = X_res[len(y):][:20] + np.array([0.0, 0.0, 0.05])
    assert not on_some_minority_segment(X, y, 1, off).all()


@pytest.mark.parametrize(
    "strategy, make",
    [
        ("auto", three_classes),
        ("minority", three_classes),
        ("not minority", three_classes),
        ("all", three_classes),
        (0.5, two_classes),
        ({1: 200}, two_classes),
        ({1: 150, 2: 300}, three_classes),
        (lambda y: {1: 220}, two_classes),
    ],
    ids=["auto", "minority", "not-minority", "all", "ratio", "dict", "dict-multiclass", "callable"],
)
def test_sampling_strategy_targets_match_imblearn(strategy, make):
    imblearn_over = pytest.importorskip("imblearn.over_sampling")
    X, y = make()
    theirs = imblearn_over.ADASYN(sampling_strategy=strategy).fit(X, y).sampling_strategy_
    ours = ADASYN(sampling_strategy=strategy, random_state=0)
    _, y_res = ours.fit_resample(X, y)
    assert ours.sampling_strategy_ == dict(theirs)
    for label, n_new in theirs.items():
        assert np.sum(y_res == label) == np.sum(y == label) + n_new


# --- the algorithm's own rules -------------------------------------------------------------------


def whole_data_majority_share(X, y, label, k=K):
    """r_i of each point of class ``label`` by scikit-learn: share of other classes among its k NN."""
    rows = np.flatnonzero(y == label)
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(X)
    idx = nn.kneighbors(X[rows], return_distance=False)[:, 1:]
    return (y[idx] != label).mean(axis=1), idx


def test_counts_follow_the_rounding_rule():
    X, y = two_classes(n_minor=37)
    G = 300 - 37
    r, _ = whole_data_majority_share(X, y, 1)
    sampler = ADASYN(random_state=0)
    sampler.fit_resample(X, y)
    g = sampler.n_synthetic_per_sample_[1]
    np.testing.assert_allclose(sampler.ratios_[1], r / r.sum())
    exact = r / r.sum() * G
    floor = np.floor(exact + 1e-9)
    up = g - floor  # floor, then + 1 for the largest remainders, so that the total is G
    assert g.sum() == G
    assert set(np.unique(up)) <= {0, 1} and up.any()
    fraction = exact - floor
    assert fraction[up == 1].min() >= fraction[up == 0].max() - 1e-9


def test_beta_scales_G():
    X, y = two_classes(n_minor=40)
    for beta, expected in [(0.5, round(260 * 0.5)), (0.25, round(260 * 0.25)), (1.5, 390)]:
        _, y_res = ADASYN(beta=beta, random_state=0).fit_resample(X, y)
        assert np.sum(y_res == 1) - 40 == expected


def test_report_variant_gives_nothing_to_points_without_minority_neighbours():
    rng = np.random.default_rng(5)
    majority = rng.normal(0.0, 1.0, (400, 2))
    inside = [[0.0, 0.0], [-1.0, 0.5], [0.5, -1.0]]  # minority points alone in the majority cloud
    minority = np.vstack([rng.normal(3.0, 0.3, (25, 2)), inside])
    X = np.vstack([majority, minority])
    y = np.array([0] * 400 + [1] * len(minority))
    r, idx = whole_data_majority_share(X, y, 1)
    lonely = (y[idx] == 1).sum(axis=1) == 0
    assert lonely.any() and (r[lonely] == 1).all()

    report = ADASYN(variant="report", random_state=0)
    X_rep, _ = report.fit_resample(X, y)
    g_rep = report.n_synthetic_per_sample_[1]
    assert (g_rep[lonely] == 0).all()
    G = 400 - len(minority)
    m = np.rint(r * K)  # majority neighbours, an integer count
    expected = np.where(lonely, 0, np.rint(G * m / m.sum())).astype(int)
    np.testing.assert_array_equal(g_rep, expected)
    assert len(X_rep) - len(X) == expected.sum() < G
    # each point moves towards a minority point of its own whole-data neighbourhood
    rows = np.flatnonzero(y == 1)
    for i, j in zip(report.base_indices_, report.neighbor_indices_, strict=True):
        assert y[j] == 1 and j in idx[np.searchsorted(rows, i)]

    paper = ADASYN(random_state=0)
    paper.fit_resample(X, y)
    assert (paper.n_synthetic_per_sample_[1][lonely] > 0).all()
    assert paper.n_synthetic_per_sample_[1].sum() == G


# --- contract: determinism, types, estimator API -----------------------------------------------


def test_same_seed_same_output_other_seed_differs():
    X, y = two_classes()
    a = ADASYN(random_state=7).fit_resample(X, y)
    b = ADASYN(random_state=7).fit_resample(X, y)
    c = ADASYN(random_state=8).fit_resample(X, y)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    d = ADASYN(random_state=np.random.RandomState(7)).fit_resample(X, y)
    np.testing.assert_array_equal(a[0], d[0])


def test_float32_and_label_dtype_preserved():
    X, y = two_classes()
    X_res, y_res = ADASYN(random_state=0).fit_resample(X.astype(np.float32), y.astype(np.int32))
    assert X_res.dtype == np.float32 and y_res.dtype == np.int32
    X_res64, _ = ADASYN(random_state=0).fit_resample(X.astype(np.float32).astype(np.float64), y)
    np.testing.assert_allclose(X_res, X_res64, rtol=1e-6, atol=1e-6)


def test_pandas_in_pandas_out():
    X, y = two_classes()
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    s = pd.Series(y, name="label")
    X_res, y_res = ADASYN(random_state=0).fit_resample(df, s)
    assert isinstance(X_res, pd.DataFrame) and list(X_res.columns) == ["a", "b", "c"]
    assert isinstance(y_res, pd.Series) and y_res.name == "label"
    X_arr, y_arr = ADASYN(random_state=0).fit_resample(X, y)
    np.testing.assert_array_equal(X_res.to_numpy(), X_arr)
    np.testing.assert_array_equal(y_res.to_numpy(), y_arr)
    _, y_frame = ADASYN(random_state=0).fit_resample(df, s.to_frame())
    assert isinstance(y_frame, pd.DataFrame) and list(y_frame.columns) == ["label"]


@pytest.mark.parametrize(
    "labels", [("neg", "pos"), (False, True), (0.0, 1.0), (-3, 7)], ids=["str", "bool", "f", "neg"]
)
def test_label_kinds_accepted(labels):
    X, y = two_classes()
    y_named = np.where(y == 1, labels[1], labels[0])
    _, y_res = ADASYN(random_state=0).fit_resample(X, y_named)
    assert np.sum(y_res == labels[1]) == np.sum(y_res == labels[0]) == 300


def test_estimator_api_clone_and_pipeline():
    strategy = {1: 200}
    sampler = ADASYN(sampling_strategy=strategy, beta=0.5, n_neighbors=3, random_state=1)
    assert sampler.get_params()["sampling_strategy"] is strategy
    twin = clone(sampler)
    assert twin.get_params() == sampler.get_params() and twin is not sampler
    twin.set_params(variant="report", beta=1.0)
    assert twin.variant == "report" and sampler.variant == "he2008"

    imblearn_pipeline = pytest.importorskip("imblearn.pipeline")
    from sklearn.linear_model import LogisticRegression

    X, y = two_classes()
    model = imblearn_pipeline.Pipeline([("ada", ADASYN(random_state=0)), ("lr", LogisticRegression())])
    model.fit(X, y)
    assert model.predict(X).shape == y.shape


def test_docstring_example_runs():
    result = doctest.testmod(adasyn_module)
    assert result.attempted > 0 and result.failed == 0


# --- errors ----------------------------------------------------------------------------------------


def _errors():
    X, y = two_classes()
    rng = np.random.default_rng(0)
    far = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(50, 1, (10, 2))])
    far_y = np.array([0] * 100 + [1] * 10)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    X_inf = X.copy()
    X_inf[5, 0] = -np.inf
    one_minor = np.r_[np.zeros(20), 1]
    return [
        ("one-class", {}, X[:50], np.zeros(50), r"only one class"),
        ("tiny-class", {}, rng.normal(size=(21, 2)), one_minor, r"at least 2 samples"),
        ("k-too-big", {"n_neighbors": 5}, X[:24], np.r_[np.zeros(20), np.ones(4)],
         r"n_neighbors can be at most n_minority - 1 = 3"),
        ("no-majority-neighbour", {"n_neighbors": 3}, far, far_y,
         r"Not any neighbours belong to the majority class"),
        ("nan", {}, X_nan, y, r"NaN or infinity"),
        ("inf", {}, X_inf, y, r"NaN or infinity"),
        ("lengths", {}, X, y[:-1], r"different lengths"),
        ("float-labels", {}, X, np.where(y == 1, 0.5, 0.0), r"Unknown label type.*non-integer"),
        ("multilabel", {}, X, np.c_[y, y, 1 - y], r"Multilabel"),
        ("beta-0", {"beta": 0}, X, y, r"beta must be a finite number > 0"),
        ("beta-neg", {"beta": -1.0}, X, y, r"beta must be a finite number > 0"),
        ("beta-inf", {"beta": np.inf}, X, y, r"beta must be a finite number > 0"),
        ("k-0", {"n_neighbors": 0}, X, y, r"n_neighbors must be an int >= 1"),
        ("k-float", {"n_neighbors": 2.5}, X, y, r"n_neighbors must be an int >= 1"),
        ("variant", {"variant": "smote"}, X, y, r"unknown variant 'smote'"),
        ("strategy", {"sampling_strategy": "most"}, X, y, r"unknown sampling_strategy"),
        ("strategy-down", {"sampling_strategy": {1: 10}}, X, y, r"only adds samples"),
        ("ratio-down", {"sampling_strategy": 0.01}, X, y, r"only adds samples"),
    ]


@pytest.mark.parametrize("params, X, y, pattern", [e[1:] for e in _errors()],
                         ids=[e[0] for e in _errors()])
def test_bad_input_raises_one_clear_line(params, X, y, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        ADASYN(**params).fit_resample(X, y)
    assert "\n" not in str(info.value)


def test_sparse_input_raises_type_error():
    X, y = two_classes()
    with pytest.raises(TypeError, match=r"does not support sparse X"):
        ADASYN().fit_resample(sparse.csr_matrix(X), y)


# --- bounded memory and exact, block-independent neighbours ----------------------------------


@pytest.mark.parametrize("n_queries", [1, 492, 20_000, 1_000_000])
@pytest.mark.parametrize("n_features", [2, 29, 500])
@pytest.mark.parametrize("budget", [2**20, 256 * 2**20])
def test_block_size_keeps_the_block_under_budget(n_queries, n_features, budget):
    rows = adasyn_module._block_rows(n_queries, n_features, budget)
    assert rows >= 1
    if 64 * n_queries + 12 * n_features + 16 <= budget:
        # scores, candidate arrays and the block's rows, worst case, within the budget
        assert rows * (64 * n_queries + 12 * n_features + 16) <= budget
        assert rows * n_queries * 4 <= budget


def test_working_memory_stays_bounded_for_many_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 8))
    queries = np.sort(rng.choice(len(X), 300, replace=False))
    budget = 16 * 2**20
    tracemalloc.start()
    try:
        adasyn_module._kneighbors(X, queries, K, budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    all_pairs = len(X) * len(queries) * 4  # one float32 distance matrix: 120 MB
    assert peak <= budget < all_pairs / 5


def brute_force_neighbours(X, query_rows, k):
    """Sort every distance by (distance, row): the exact answer, ties to the lower row."""
    diff = X[query_rows][:, None, :].astype(np.float64) - X[None, :, :].astype(np.float64)
    dist = np.einsum("qnd,qnd->qn", diff, diff)
    dist[np.arange(len(query_rows)), query_rows] = np.inf
    rows = np.broadcast_to(np.arange(len(X)), dist.shape)
    order = np.lexsort((rows, dist), axis=1)
    return order[:, :k]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_neighbours_exact_with_ties_and_any_block_size(dtype):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 4, size=(400, 3)).astype(dtype)  # a small grid: many ties and duplicates
    X = np.vstack([X, rng.normal(100.0, 1.0, (50, 3)).astype(dtype)])  # and some far-off rows
    queries = np.sort(rng.choice(len(X), 60, replace=False))
    expected = brute_force_neighbours(X, queries, K)
    for budget, jobs in [(256 * 2**20, 1), (64 * 60 + 64, 1), (20_000, 3), (200_000, 2)]:
        got = adasyn_module._kneighbors(X, queries, K, budget, n_jobs=jobs)
        np.testing.assert_array_equal(got, expected)


def test_neighbours_exact_where_float32_alone_would_not_be():
    # Two tight clusters 10^4 apart: centred on the queries' mean, every row has a norm near 5e3,
    # so a float32 distance is off by ~1 while neighbours differ by ~1e-3. The margin and the
    # float64 re-measure must still give the exact answer.
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(0.0, 0.01, (200, 4)), rng.normal(1e4, 0.01, (200, 4))])
    queries = np.sort(rng.choice(len(X), 80, replace=False))
    expected = brute_force_neighbours(X, queries, K)
    np.testing.assert_array_equal(adasyn_module._kneighbors(X, queries, K, 2**20), expected)


def test_tiny_budget_gives_identical_resampling(monkeypatch):
    X, y = three_classes()
    full = ADASYN(random_state=4).fit_resample(X, y)
    monkeypatch.setattr(adasyn_module, "MEMORY_BUDGET_BYTES", 5_000)
    assert adasyn_module._block_rows(60, 3, 5_000) < 10
    tiny = ADASYN(random_state=4).fit_resample(X, y)
    np.testing.assert_array_equal(full[0], tiny[0])
    np.testing.assert_array_equal(full[1], tiny[1])


# --- imbalanced-learn's generic sampler checks ----------------------------------------------------

APPLICABLE_CHECKS = [
    "check_target_type",
    "check_samplers_one_label",
    "check_samplers_fit",
    "check_samplers_fit_resample",
    "check_samplers_sampling_strategy_fit_resample",
    "check_samplers_pandas",
    "check_samplers_list",
    "check_samplers_multiclass_ova",
    "check_samplers_preserve_dtype",
    "check_samplers_2d_target",
    "check_sampler_get_feature_names_out",
    "check_sampler_get_feature_names_out_pandas",
]
SKIPPED_CHECKS = {
    "check_samplers_sparse": "sparse X is not supported: ADASYN raises TypeError "
    "(test_sparse_input_raises_type_error)",
    "check_samplers_pandas_sparse": "sparse pandas columns are sparse input, not supported",
    "check_samplers_sample_indices": "reads imbalanced-learn's own `sampler_tags`, which a "
    "scikit-learn Tags object does not carry; the property it checks (no `sample_indices_`) is "
    "test_has_no_sample_indices",
}


def test_every_imblearn_sampler_check_is_run_or_skipped_by_name():
    pytest.importorskip("imblearn")
    from imblearn.over_sampling import ADASYN as ImblearnADASYN
    from imblearn.utils.estimator_checks import _yield_sampler_checks

    names = {check.__name__ for check in _yield_sampler_checks(ImblearnADASYN())}
    assert names <= set(APPLICABLE_CHECKS) | set(SKIPPED_CHECKS)


@pytest.mark.parametrize(
    "name",
    APPLICABLE_CHECKS
    + [pytest.param(n, marks=pytest.mark.skip(reason=r)) for n, r in SKIPPED_CHECKS.items()],
)
def test_imblearn_sampler_check(name):
    checks = pytest.importorskip("imblearn.utils.estimator_checks")
    if not hasattr(checks, name):
        pytest.skip(f"{name} is not in this imbalanced-learn version")
    getattr(checks, name)("ADASYN", ADASYN(random_state=0))


def test_has_no_sample_indices():
    X, y = two_classes()
    sampler = ADASYN(random_state=0)
    sampler.fit_resample(X, y)
    assert not hasattr(sampler, "sample_indices_")


def test_sampler_does_not_import_imblearn():
    code = (
        "import sys, numpy as np; from project.sampling import ADASYN; "
        "X = np.random.default_rng(0).normal(size=(60, 2)); y = np.r_[np.zeros(50), np.ones(10)]; "
        "ADASYN(random_state=0).fit_resample(X, y); print('imblearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
