"""ADASYN: against imbalanced-learn as an oracle, the report's loop, geometry, and its contract.

Our sampler subclasses imbalanced-learn's BaseOverSampler; imbalanced-learn's ADASYN is the oracle
for the paper's variant, a transcription of the report's loop the oracle for ``variant="report"``,
and imbalanced-learn's own estimator checks the judge of the contract.
"""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import ADASYN as ImblearnADASYN
from imblearn.pipeline import Pipeline
from imblearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_param_validation,
    check_samplers_fit_resample,
    estimator_checks_generator,
    parametrize_with_checks,
)
from scipy import sparse
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.estimator_checks import (
    estimator_checks_generator as sklearn_checks_generator,
)

from benchmarks.report_adasyn import report_loop
from project.errors import InputError
from project.sampling import ADASYN, knn
from project.sampling import adasyn as adasyn_module

pytestmark = pytest.mark.backend_independent  # no Keras: make test runs it once

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
    X, y = make()
    theirs = ImblearnADASYN(random_state=0)
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
    X, y = make()
    n = len(y)
    X_theirs, y_theirs = ImblearnADASYN(random_state=ZeroSteps(1)).fit_resample(X, y)
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
    X, y = make()
    theirs = ImblearnADASYN(sampling_strategy=strategy).fit(X, y).sampling_strategy_
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


# --- variant="report": point for point the report's loop -------------------------------------
# The oracle is benchmarks.report_adasyn.report_loop, with one deliberate choice: sort_kind=
# "stable", so that equal distances go to the lower row, as ours (the report's default sort
# leaves their order to the sorting algorithm).


class CountingDraws(np.random.RandomState):
    """A stand-in RNG whose draws are a fixed sequence, the same however they are batched.

    The t-th integer drawn below ``high`` is ``t % high`` and the t-th uniform is a fixed
    irrational step of t (mod 1), whether drawn one at a time (the report's loop) or as an array
    (ours). So both implementations, given one each, must pick the same partner and lambda for
    the t-th synthetic row, and their outputs must agree bit for bit; and as the partner index
    cycles, a point with at least as many synthetic rows as partners shows all of them.
    """

    def __init__(self):
        super().__init__(0)
        self.n_int = self.n_uniform = 0

    def randint(self, low, high=None, size=None, dtype=int):
        low, high = (0, low) if high is None else (low, high)
        span = np.asarray(high) - low
        n = int(np.prod(np.broadcast(span, np.empty(size or ())).shape))
        t = self.n_int + np.arange(n)
        self.n_int += n
        out = low + t % span if np.ndim(span) or size is not None else low + int(t[0] % span)
        return out

    def uniform(self, low=0.0, high=1.0, size=None):
        n = 1 if size is None else int(np.prod(size))
        t = self.n_uniform + np.arange(n)
        self.n_uniform += n
        out = low + (high - low) * np.mod((t + 1) * 0.6180339887498949, 1.0)
        return out.reshape(size) if size is not None else float(out[0])


def report_data_sets():
    """(name, X, y, k, beta): continuous, ties and duplicates, lonely points, a minority cluster."""
    rng = np.random.default_rng(11)
    sets = []
    X, y = two_classes(n_major=200, n_minor=30, d=3, seed=1)
    sets.append(("gaussian", X, y, 5, 1.0))
    # A small integer grid: exact ties everywhere, and duplicate rows, some with both labels.
    grid = rng.integers(0, 5, size=(260, 2)).astype(float)
    labels = (rng.random(260) < 0.15).astype(int)
    grid = np.vstack([grid, grid[labels == 1][:6], grid[labels == 0][:4]])  # more duplicates
    labels = np.r_[labels, np.ones(6, int), np.ones(4, int)]
    sets.append(("grid-ties-duplicates", grid, labels, 5, 1.0))
    sets.append(("grid-k3-beta0.7", grid, labels, 3, 0.7))
    # Minority points alone in the majority cloud (all k neighbours majority: weight 0 mod k), a
    # tight minority cluster far off (all minority: weight 0), and a mixed boundary.
    majority = rng.normal(0.0, 1.0, (300, 2))
    lonely = np.array([[0.0, 0.0], [-1.0, 0.5], [0.5, -1.0]])
    cluster = rng.normal(8.0, 0.05, (12, 2))
    boundary = rng.normal(1.8, 0.5, (25, 2))
    X = np.vstack([majority[:150], lonely, majority[150:], boundary, cluster])
    y = np.r_[np.zeros(150, int), np.ones(3, int), np.zeros(150, int), np.ones(37, int)]
    sets.append(("lonely-and-cluster", X, y, 5, 1.0))
    sets.append(("lonely-and-cluster-k2", X, y, 2, 1.3))
    return sets


REPORT_SETS = report_data_sets()


@pytest.mark.parametrize("name, X, y, k, beta", REPORT_SETS, ids=[s[0] for s in REPORT_SETS])
def test_report_variant_is_the_reports_loop_point_for_point(name, X, y, k, beta):
    counts, partners, synthetic = report_loop(X, y, k, beta, CountingDraws(), sort_kind="stable")
    ours = ADASYN(variant="report", n_neighbors=k, beta=beta, random_state=CountingDraws())
    X_res, y_res = ours.fit_resample(X, y)

    np.testing.assert_array_equal(ours.n_synthetic_per_sample_[1], counts)
    assert len(X_res) == len(X) + counts.sum() and (y_res[len(X):] == 1).all()
    np.testing.assert_array_equal(X_res[:len(X)], X)
    np.testing.assert_array_equal(ours.base_indices_, [s[0] for s in synthetic])
    np.testing.assert_array_equal(ours.neighbor_indices_, [s[1] for s in synthetic])
    np.testing.assert_array_equal(X_res[len(X):], np.array([s[3] for s in synthetic]).reshape(
        -1, X.shape[1]))

    # The partner sets, seen whole where a point made at least as many rows as it has partners.
    points = np.flatnonzero(y == 1)
    shown = 0
    for i, m in enumerate(points):
        drawn = set(ours.neighbor_indices_[ours.base_indices_ == m].tolist())
        assert drawn <= set(partners[i])
        if counts[i] >= len(partners[i]) > 0:
            assert drawn == set(partners[i])
            shown += 1
    assert shown > 0


@pytest.mark.parametrize("name, X, y, k, beta", REPORT_SETS, ids=[s[0] for s in REPORT_SETS])
def test_report_variant_with_a_real_rng_keeps_counts_bases_and_partners(name, X, y, k, beta):
    counts, partners, _ = report_loop(X, y, k, beta, np.random.RandomState(50), sort_kind="stable")
    ours = ADASYN(variant="report", n_neighbors=k, beta=beta, random_state=50)
    X_res, _ = ours.fit_resample(X, y)
    np.testing.assert_array_equal(ours.n_synthetic_per_sample_[1], counts)
    points = np.flatnonzero(y == 1)
    np.testing.assert_array_equal(ours.base_indices_, np.repeat(points, counts))
    partner_of = dict(zip(points.tolist(), partners))
    for p, i, j in zip(X_res[len(X):], ours.base_indices_, ours.neighbor_indices_):
        assert j in partner_of[i]
        assert distance_to_segment(p, X[i], X[j]) <= 1e-9


def test_report_data_sets_hold_the_cases_that_matter():
    """The oracle data really have ties, duplicates, and all-majority / all-minority points."""
    by_name = {s[0]: s for s in REPORT_SETS}
    _, X, y, k, beta = by_name["lonely-and-cluster"]
    counts, partners, _ = report_loop(X, y, k, beta, np.random.RandomState(0), sort_kind="stable")
    sizes = np.array([len(p) for p in partners])
    assert (sizes == 0).sum() >= 3 and (sizes == k).sum() >= 10  # all majority; all minority
    assert (counts[(sizes == 0) | (sizes == k)] == 0).all()
    assert counts.sum() < int((np.sum(y == 0) - np.sum(y == 1)) * beta)  # truncation, zeros

    _, X, y, k, _ = by_name["grid-ties-duplicates"]
    points = np.flatnonzero(y == 1)
    dup_earlier = [m for m in points if (X[:m] == X[m]).all(axis=1).any()]
    assert dup_earlier  # a copy of m comes before m: position 0 is not m itself
    d = ((X[points[:, None]] - X[None]) ** 2).sum(-1)
    kth = np.sort(d, axis=1)[:, k]
    assert ((d == kth[:, None]).sum(axis=1) > 1).any()  # ties at the k-th place


def test_report_variant_can_give_a_point_itself_as_partner():
    # Two copies of a minority point, the first one earlier: the stable argsort puts the copy at
    # position 0, so the later copy's neighbourhood holds the later copy itself (a minority row).
    X = np.array([[0.0, 0.0], [5.0, 5.0], [5.0, 5.0], [5.2, 5.0], [4.9, 5.0], [5.0, 5.3],
                  [0.5, 0.0], [0.0, 0.6], [9.0, 9.0]])
    y = np.array([0, 1, 1, 0, 0, 0, 0, 0, 0])
    counts, partners, _ = report_loop(X, y, 3, 1.0, np.random.RandomState(0), sort_kind="stable")
    assert partners == [[2], [2]]
    ours = ADASYN(variant="report", n_neighbors=3, random_state=0)
    ours.fit_resample(X, y)
    np.testing.assert_array_equal(ours.n_synthetic_per_sample_[1], counts)
    assert set(ours.neighbor_indices_.tolist()) == {2}


def test_report_variant_needs_k_of_two_and_some_weight():
    X, y = two_classes()
    with pytest.raises(InputError, match=r"n_neighbors=1 with variant='report'"):
        ADASYN(variant="report", n_neighbors=1).fit_resample(X, y)
    rng = np.random.default_rng(0)
    far = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(50, 1, (10, 2))])
    with pytest.raises(InputError, match=r"no point of class 1 has a weight"):
        ADASYN(variant="report", n_neighbors=3).fit_resample(far, np.repeat([0, 1], [100, 10]))


def test_paper_variant_gives_lonely_points_their_share():
    _, X, y, k, _ = next(s for s in REPORT_SETS if s[0] == "lonely-and-cluster")
    r, idx = whole_data_majority_share(X, y, 1, k)
    lonely = r == 1
    assert lonely.sum() == 3
    paper = ADASYN(n_neighbors=k, random_state=0)
    paper.fit_resample(X, y)
    g = paper.n_synthetic_per_sample_[1]
    assert (g[lonely] > 0).all() and g.sum() == np.sum(y == 0) - np.sum(y == 1)
    assert g[lonely].min() >= g[~lonely].max()  # the hardest points get the most

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


def test_integer_features_come_back_as_float64():
    X, y = two_classes()
    X_int = np.rint(X * 10).astype(np.int64)
    X_res, _ = ADASYN(random_state=0).fit_resample(X_int, y)
    assert X_res.dtype == np.float64 and (X_res[:len(y)] == X_int).all()
    assert (X_res[len(y):] != np.rint(X_res[len(y):])).any()  # interpolated, not truncated
    df = pd.DataFrame({"a": X_int[:, 0], "b": X[:, 1].astype(np.float32), "c": X_int[:, 2]})
    df_res, _ = ADASYN(random_state=0).fit_resample(df, y)
    assert df_res.dtypes.tolist() == [np.float64, np.float32, np.float64]
    as_array, _ = ADASYN(random_state=0).fit_resample(df.to_numpy(np.float64), y)
    np.testing.assert_array_equal(df_res[["a", "c"]].to_numpy(), as_array[:, [0, 2]])
    assert (df_res["a"].to_numpy()[len(y):] != np.rint(df_res["a"].to_numpy()[len(y):])).any()


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


    X, y = two_classes()
    model = Pipeline([("ada", ADASYN(random_state=0)), ("lr", LogisticRegression())])
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
        # imbalanced-learn's and scikit-learn's checks, with their messages
        ("one-class", {}, X[:50], np.zeros(50), r"needs to have more than 1 class"),
        ("nan", {}, X_nan, y, r"Input X contains NaN. ADASYN needs finite values"),
        ("inf", {}, X_inf, y, r"Input X contains infinity"),
        ("lengths", {}, X, y[:-1], r"inconsistent numbers of samples"),
        ("float-labels", {}, X, np.where(y == 1, 0.5, 0.0) + rng.random(len(y)),
         r"Unknown label type"),
        ("multilabel", {}, X, np.c_[y, y, 1 - y], r"Multilabel"),
        ("beta-0", {"beta": 0}, X, y, r"'beta' parameter of ADASYN must be a float in the range"),
        ("beta-neg", {"beta": -1.0}, X, y, r"'beta' parameter"),
        ("beta-inf", {"beta": np.inf}, X, y, r"'beta' parameter"),
        ("k-0", {"n_neighbors": 0}, X, y, r"'n_neighbors' parameter of ADASYN must be an int"),
        ("k-float", {"n_neighbors": 2.5}, X, y, r"'n_neighbors' parameter"),
        ("variant", {"variant": "smote"}, X, y, r"'variant' parameter of ADASYN must be a str"),
        ("strategy", {"sampling_strategy": "most"}, X, y, r"'sampling_strategy' parameter"),
        ("strategy-down", {"sampling_strategy": {1: 10}}, X, y, r"should be greater or equal"),
        ("ratio-down", {"sampling_strategy": 0.01}, X, y, r"Please increase the ratio"),
        # ours (InputError)
        ("tiny-class", {}, rng.normal(size=(21, 2)), one_minor, r"at least 2 samples"),
        ("k-too-big", {"n_neighbors": 5}, X[:24], np.r_[np.zeros(20), np.ones(4)],
         r"n_neighbors can be at most n_minority - 1 = 3"),
        ("no-majority-neighbour", {"n_neighbors": 3}, far, far_y, r"no point of class 1"),
    ]


@pytest.mark.parametrize("params, X, y, pattern", [e[1:] for e in _errors()],
                         ids=[e[0] for e in _errors()])
def test_bad_input_raises_one_clear_line(params, X, y, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        ADASYN(**params).fit_resample(X, y)
    assert "\n" not in str(info.value).strip()


def test_our_own_checks_raise_input_error():
    X, y = two_classes()
    with pytest.raises(InputError, match=r"n_neighbors can be at most"):
        ADASYN(n_neighbors=50).fit_resample(X, y)


# --- sparse, and the memory budget --------------------------------------------------------------


@pytest.mark.parametrize("variant", ["he2008", "report"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_in_sparse_out_same_as_dense(variant, fmt):
    X, y = two_classes()
    X[np.abs(X) < 0.8] = 0.0
    dense = ADASYN(variant=variant, random_state=2).fit_resample(X.astype(np.float32), y)
    X_sp = sparse.csr_matrix(X.astype(np.float32)).asformat(fmt)
    X_res, y_res = ADASYN(variant=variant, random_state=2).fit_resample(X_sp, y)
    assert sparse.issparse(X_res) and X_res.format == fmt and X_res.dtype == np.float32
    np.testing.assert_array_equal(X_res.toarray(), dense[0])
    np.testing.assert_array_equal(y_res, dense[1])


def test_tiny_budget_gives_identical_resampling(monkeypatch):
    X, y = three_classes()
    full = ADASYN(random_state=4).fit_resample(X, y)
    monkeypatch.setattr(adasyn_module, "MEMORY_BUDGET_BYTES", 5_000)
    assert knn.block_rows(60, 3, 5_000) < 10
    tiny = ADASYN(random_state=4).fit_resample(X, y)
    np.testing.assert_array_equal(full[0], tiny[0])
    np.testing.assert_array_equal(full[1], tiny[1])


# --- imbalanced-learn's estimator checks, run as imbalanced-learn runs them on its samplers ---------
# (imblearn/tests/test_common.py: its parametrize_with_checks, check_param_validation and
# check_dataframe_column_names_consistency, and scikit-learn's own checks.) Nothing is skipped:
# every check `_yield_all_checks` yields for our tags (sparse and DataFrame input included) runs.


@parametrize_with_checks([ADASYN(random_state=42)])
def test_imblearn_estimator_checks(estimator, check):
    check(estimator)


def test_imblearn_harness_covers_sparse_and_dataframes():
    names = {c.func.__name__ for _, c in estimator_checks_generator(ADASYN(random_state=42))}
    assert {"check_samplers_sparse", "check_samplers_pandas", "check_samplers_pandas_sparse",
            "check_samplers_fit_resample", "check_samplers_preserve_dtype"} <= names
    assert len(names) >= 15


@pytest.mark.parametrize("check", [check_param_validation,
                                   check_dataframe_column_names_consistency])
def test_imblearn_common_checks(check):
    check("ADASYN", ADASYN(random_state=42))


def _report_variant_checks():
    checks = estimator_checks_generator(ADASYN(variant="report", random_state=42))
    return [pytest.param(e, c, id=c.func.__name__) for e, c in checks
            if c.func is not check_samplers_fit_resample]


@pytest.mark.parametrize("estimator, check", _report_variant_checks())
def test_imblearn_checks_on_the_report_variant(estimator, check):
    check(estimator)


def test_report_variant_fails_only_the_balance_check_by_design():
    # The report's truncation and its zero weights make fewer samples than asked, so the class
    # counts stay under the majority's: the one imbalanced-learn check it cannot pass.
    with pytest.raises(AssertionError):
        check_samplers_fit_resample("ADASYN", ADASYN(variant="report", random_state=42))


def _sklearn_checks():
    # check_array_api_input skips itself unless SCIPY_ARRAY_API=1 was set before SciPy was
    # imported, for every estimator; it is left out rather than reported as a skip.
    return [pytest.param(e, c, id=getattr(c, "func", c).__name__)
            for e, c in sklearn_checks_generator(ADASYN(random_state=42))
            if getattr(c, "func", c).__name__ != "check_array_api_input"]


@pytest.mark.parametrize("estimator, check", _sklearn_checks())
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
