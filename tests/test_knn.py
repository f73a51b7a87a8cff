"""project.sampling.knn.kneighbors: exact, ties to the lower row, bounded memory, any block size."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import sparse

from project.sampling import knn
from project.sampling.knn import block_rows, kneighbors

pytestmark = pytest.mark.backend_independent  # no Keras: make test runs it once

K = 5


def brute_force(X, query_rows, k, include_self=False):
    """Every distance, sorted by (distance, row): the exact answer, ties to the lower row.

    Distances are the float64 sums of squared differences; the test data below are small
    integers, halves or continuous draws, so equal distances are exactly equal however summed.
    """
    X = np.asarray(X, dtype=np.float64)
    query_rows = np.asarray(query_rows)
    dist = ((X[query_rows][:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    if not include_self:
        dist[np.arange(len(query_rows)), query_rows] = np.inf
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


def grid_with_duplicates(dtype=np.float64, seed=1):
    """A small integer grid (many ties, many duplicate rows) plus some far-off continuous rows."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 4, size=(400, 3)).astype(dtype)
    return np.vstack([X, rng.normal(100.0, 1.0, (50, 3)).astype(dtype)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("include_self", [False, True], ids=["exclude-self", "include-self"])
def test_matches_brute_force_with_ties_and_duplicates_for_any_block(dtype, include_self):
    X = grid_with_duplicates(dtype)
    rng = np.random.default_rng(2)
    queries = rng.choice(len(X), 60, replace=False)  # unsorted on purpose
    expected = brute_force(X, queries, K, include_self)
    # the grid has exact ties at the k-th place and duplicates of query rows
    assert (np.sort(((X[queries, None] - X[None]) ** 2).sum(-1), axis=1)[:, 1] == 0).any()
    one_row = 64 * 60  # a budget that allows a block of a single row
    assert block_rows(60, 3, one_row) == 1
    for budget, jobs in [(256 * 2**20, 1), (one_row, 1), (one_row, 3), (20_000, 3), (200_000, 2)]:
        got = kneighbors(X, queries, K, include_self=include_self, memory_budget_bytes=budget,
                         n_jobs=jobs)
        assert got.dtype == np.int64 and got.shape == (60, K)
        np.testing.assert_array_equal(got, expected)


def test_ties_go_to_the_lower_row_and_self_is_excluded():
    X = np.array([[0.0], [1.0], [-1.0], [1.0], [0.0], [2.0]])
    # row 0: row 4 (a duplicate, distance 0), then rows 1, 2, 3 all at 1: lower rows first
    np.testing.assert_array_equal(kneighbors(X, [0], 4), [[4, 1, 2, 3]])
    # included, the query competes like any row: row 0 before its duplicate row 4
    np.testing.assert_array_equal(kneighbors(X, [4], 2, include_self=True), [[0, 4]])
    np.testing.assert_array_equal(kneighbors(X, [0], 2, include_self=True), [[0, 4]])


@pytest.mark.parametrize("include_self", [False, True], ids=["exclude-self", "include-self"])
def test_k_as_large_as_allowed(include_self):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 3, size=(30, 2)).astype(float)
    k = len(X) if include_self else len(X) - 1
    queries = np.arange(len(X))
    got = kneighbors(X, queries, k, include_self=include_self, memory_budget_bytes=64 * 30)
    np.testing.assert_array_equal(got, brute_force(X, queries, k, include_self))
    assert all(sorted(row) == sorted(set(range(len(X))) - (set() if include_self else {q}))
               for q, row in zip(queries, got.tolist()))


def test_integer_rows_are_measured_exactly():
    X = grid_with_duplicates()[:400].astype(np.int32)
    queries = np.arange(0, 400, 9)
    np.testing.assert_array_equal(kneighbors(X, queries, K, memory_budget_bytes=30_000),
                                  brute_force(X, queries, K))


def test_repeated_and_unordered_queries():
    X = grid_with_duplicates()
    queries = np.array([7, 3, 7, 449, 0, 3])
    np.testing.assert_array_equal(kneighbors(X, queries, K), brute_force(X, queries, K))


def test_sparse_matches_dense():
    X = grid_with_duplicates()
    X[X < 2] = 0.0  # make it actually sparse
    queries = np.arange(0, len(X), 7)
    expected = kneighbors(X, queries, K)
    np.testing.assert_array_equal(expected, brute_force(X, queries, K))
    for fmt in ("csr", "csc"):
        got = kneighbors(sparse.csr_matrix(X).asformat(fmt), queries, K, memory_budget_bytes=50_000)
        np.testing.assert_array_equal(got, expected)


def test_exact_where_float32_alone_would_not_be():
    # Two tight clusters 10^4 apart: centred on the queries' mean, every row has a norm near 5e3,
    # so a float32 distance is off by ~1 while neighbours differ by ~1e-3. The margin and the
    # float64 re-measure must still give the exact answer.
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(0.0, 0.01, (200, 4)), rng.normal(1e4, 0.01, (200, 4))])
    queries = np.sort(rng.choice(len(X), 80, replace=False))
    expected = brute_force(X, queries, K)
    np.testing.assert_array_equal(kneighbors(X, queries, K, memory_budget_bytes=2**20), expected)


def test_continuous_data_many_blocks_and_threads():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 7)).astype(np.float32)
    queries = rng.choice(len(X), 40, replace=False)
    expected = brute_force(X, queries, 9)
    for budget, jobs in [(64 * 40 + 500, 4), (300_000, 2), (256 * 2**20, None)]:
        got = kneighbors(X, queries, 9, memory_budget_bytes=budget, n_jobs=jobs)
        np.testing.assert_array_equal(got, expected)


def test_no_queries_gives_an_empty_answer():
    assert kneighbors(np.ones((4, 2)), [], 2).shape == (0, 2)


@pytest.mark.parametrize(
    "X, queries, k, kwargs, pattern",
    [
        (np.ones((5, 2)), [0], 5, {}, r"k must be an int in \[1, 4\]"),
        (np.ones((5, 2)), [0], 6, {"include_self": True}, r"k must be an int in \[1, 5\]"),
        (np.ones((5, 2)), [0], 0, {}, r"k must be an int"),
        (np.ones((5, 2)), [0], 2.0, {}, r"k must be an int"),
        (np.ones((5, 2)), [5], 2, {}, r"query_rows must be rows of X"),
        (np.ones(5), [0], 2, {}, r"X must be 2-D"),
    ],
    ids=["k-n", "k-n-self", "k-0", "k-float", "row", "1-d"],
)
def test_bad_arguments(X, queries, k, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        kneighbors(X, queries, k, **kwargs)


@pytest.mark.parametrize("n_queries", [1, 492, 20_000, 1_000_000])
@pytest.mark.parametrize("n_features", [2, 29, 500])
@pytest.mark.parametrize("budget", [2**20, 256 * 2**20])
def test_block_size_keeps_the_block_under_budget(n_queries, n_features, budget):
    rows = block_rows(n_queries, n_features, budget)
    assert rows >= 1
    if 64 * n_queries + 12 * n_features + 16 <= budget:
        # scores, candidate arrays and the block's rows, worst case, within the budget
        assert rows * (64 * n_queries + 12 * n_features + 16) <= budget
        assert rows * n_queries * 4 <= min(budget, knn.MAX_BLOCK_BYTES)


def test_working_memory_stays_bounded_for_many_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 8))
    queries = np.sort(rng.choice(len(X), 300, replace=False))
    budget = 16 * 2**20
    tracemalloc.start()
    try:
        got = kneighbors(X, queries, K, memory_budget_bytes=budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    all_pairs = len(X) * len(queries) * 4  # one float32 distance matrix: 120 MB
    assert peak <= budget < all_pairs / 5
    # and still right: against the answer for a few queries, by brute force on all rows
    np.testing.assert_array_equal(got[:5], brute_force(X, queries[:5], K))
