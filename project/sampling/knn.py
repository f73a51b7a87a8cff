"""Exact k nearest neighbours of a few rows among many, in bounded memory (NumPy, no index).

The n rows are walked in blocks sized from a memory budget (never an n x n or q x n matrix).
Each block is screened with one float32 matrix product against a per-query limit that carries an
error margin, so no true neighbour is screened out; the few candidates are re-measured exactly in
float64 and merged into a running top-k. So the answer is the exact float64 k-NN, ties to the
lower row, whatever the block size or number of threads (which take the next run of rows when
free; NumPy releases the GIL, BLAS is held to one thread inside each).
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse
from threadpoolctl import ThreadpoolController

#: Default working memory of :func:`kneighbors`, all threads together (not counted: the (q, k)
#: answer and a copy of the query rows).
MEMORY_BUDGET_BYTES = 256 * 2**20

# Distance blocks larger than this gain nothing (they fall out of the CPU caches).
MAX_BLOCK_BYTES = 4 * 2**20
_EPS32 = float(np.finfo(np.float32).eps)


def kneighbors(X, query_rows, k: int, *, include_self: bool = False,
               memory_budget_bytes: int = MEMORY_BUDGET_BYTES, n_jobs: int | None = None
               ) -> np.ndarray:
    """The k nearest rows of ``X`` to each row ``X[query_rows]``, by exact Euclidean distance:
    the order of ``np.argsort(d, kind="stable")`` of each query's float64 squared distances ``d``
    to every row (float32 rows are widened first).

    ``X``: (n, d) array or SciPy sparse matrix; ``query_rows``: any rows, repeats allowed; ``k``:
    at most n - 1, or n with ``include_self`` (a query row is then a row like any other; else
    never its own neighbour, its duplicates still are). ``memory_budget_bytes`` (all threads
    together, down to a block of one row) and ``n_jobs`` (threads; None: :func:`n_threads`) do
    not change the answer: a (q, k) int64 array of rows, nearest first. ValueError for a bad
    shape, ``k`` or row.

    >>> import numpy as np
    >>> from project.sampling.knn import kneighbors
    >>> X = np.array([[0.0], [1.0], [3.0], [1.0], [10.0]])
    >>> kneighbors(X, [0, 1], 2).tolist()         # row 1 and row 3 tie for 0: lower row first
    [[1, 3], [3, 0]]
    >>> kneighbors(X, [3], 2, include_self=True).tolist()   # row 1 duplicates row 3 and comes first
    [[1, 3]]
    """
    X = _as_rows(X)
    n, d = X.shape
    query_rows = np.asarray(query_rows, dtype=np.int64).reshape(-1)
    limit = n if include_self else n - 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= limit:
        raise ValueError(f"k must be an int in [1, {limit}] for {n} rows, got {k!r}")
    if len(query_rows) and (query_rows.min() < 0 or query_rows.max() >= n):
        raise ValueError(f"query_rows must be rows of X, in [0, {n}), got {query_rows.max()}")
    if len(query_rows) == 0:
        return np.zeros((0, k), dtype=np.int64)

    # Scan the queries sorted by row (the self-exclusion below finds them by searchsorted).
    order = np.argsort(query_rows, kind="stable")
    sorted_rows = query_rows[order]
    queries = _gather(X, sorted_rows)
    n_jobs = n_jobs or n_threads()
    block = block_rows(len(queries), d, memory_budget_bytes // n_jobs)
    n_jobs = max(1, min(n_jobs, n // (4 * block)))
    cursor = _Cursor(n)

    def scan(_):
        return _scan(X, queries, sorted_rows, cursor, k, block, include_self)

    with _threadpools().limit(limits=1, user_api="blas"), ThreadPoolExecutor(n_jobs) as pool:
        parts = list(pool.map(scan, range(n_jobs)))
    dist = np.concatenate([p[0] for p in parts], axis=1)
    rows = np.concatenate([p[1] for p in parts], axis=1)
    nearest = np.lexsort((rows, dist), axis=1)[:, :k]
    result = np.empty((len(query_rows), k), dtype=np.int64)
    result[order] = np.take_along_axis(rows, nearest, axis=1)
    return result


def block_rows(n_queries: int, n_features: int, budget_bytes: int) -> int:
    """How many reference rows one block may hold so that its arrays fit in ``budget_bytes``: per
    (row, query) pair a float32 score (4 bytes) and, if every pair is a candidate, a mask byte and
    the candidate's indices, distance and merge order (56 bytes); per row, the row as float64 and
    float32. At least one row, so the bound holds while 64 * n_queries <= budget_bytes.

    >>> block_rows(492, 29, 32 * 2**20)
    1053
    """
    per_row = 64 * n_queries + 12 * n_features + 16
    rows = min(budget_bytes // per_row, MAX_BLOCK_BYTES // (4 * max(n_queries, 1)))
    return max(1, int(rows))


def n_threads() -> int:
    """Threads for the scan (and ADASYN's output): the CPUs this process may use, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, 8))


def _as_rows(X):
    """``X`` as a 2-D ndarray, or as a CSR matrix if sparse (cheap row slices)."""
    X = X.tocsr() if sparse.issparse(X) else np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_rows, n_features), got shape {X.shape}")
    return X


def _dense(part):
    """``part`` of ``X`` as a dense array (itself when dense)."""
    return part.toarray() if sparse.issparse(part) else part


def _gather(X, rows):
    """``X[rows]`` as a dense float64 array."""
    return _dense(X[rows]).astype(np.float64, copy=False)


class _Cursor:
    """The next rows to scan, shared by the threads, so a thread the machine slows down does less
    of the work instead of holding up the rest."""

    def __init__(self, n):
        self._next, self._n, self._lock = 0, n, threading.Lock()

    def take(self, size):
        """(start, stop) of the next ``size`` rows (fewer at the end; start == stop: none)."""
        with self._lock:
            start = self._next
            self._next = min(start + size, self._n)
            return start, self._next


def _scan(X, queries, query_rows, cursor, k, block, include_self):
    """Running top-k over the rows ``cursor`` hands out: (distances, rows), each (q, k), sorted.

    The float32 product's entry (query q, row x) is ``||x||^2 - 2 q.x - limit_q`` (centred on the
    queries' mean: the squared distance less ``||q||^2``); x is a candidate when it is <= 0.
    ``limit`` is the current exact k-th best plus a bound on the float32 error (until a query has
    k neighbours, the block's own k-th score plus margins). Blocks start small and double, so
    the limits are tight before the blocks are large.
    """
    n_q, d = queries.shape
    center = queries.mean(axis=0)
    centred = queries - center
    q_norm2 = np.einsum("ij,ij->i", centred, centred)
    q_norm = np.sqrt(q_norm2)
    lhs = np.empty((n_q, d + 2), np.float32)  # rows [-2 q, 1, -limit]
    lhs[:, :d] = -2.0 * centred
    lhs[:, d] = 1.0
    rhs = np.empty((d + 2, block), np.float32)  # columns [x, ||x||^2, 1]
    rhs[d + 1] = 1.0
    scores = np.empty(n_q * block, np.float32)
    ref_buf, norm_buf = np.empty((block, d)), np.empty(block)
    best_dist = np.full((n_q, k), np.inf)
    best_rows = np.full((n_q, k), X.shape[0], dtype=np.int64)
    spread = 4 * (d + 4) * _EPS32  # float32 error bound of a (d + 2)-term dot product, 8x spare

    step = min(block, 4 * k + 256)
    while True:
        start, stop = cursor.take(step)
        size = stop - start
        if size == 0:
            break
        ref = np.subtract(_dense(X[start:stop]), center, out=ref_buf[:size])
        norms = np.einsum("ij,ij->i", ref, ref, out=norm_buf[:size])
        rhs[:d, :size] = ref.T
        rhs[d, :size] = norms
        ref_max = np.sqrt(norms.max())
        kth_key = best_dist[:, -1] - q_norm2
        known = np.isfinite(kth_key)
        size_term = ref_max**2 + 2 * q_norm * ref_max + np.abs(np.where(known, kth_key, 0.0))
        margin = spread * size_term
        lhs[:, d + 1] = np.where(known, -(kth_key + margin), 0.0)
        score = np.matmul(lhs, rhs[:, :size], out=scores[: n_q * size].reshape(n_q, size))
        first, last = np.searchsorted(query_rows, [start, stop])
        mine = np.arange(first, last)
        if not include_self:
            score[mine, query_rows[mine] - start] = np.inf  # a row is not its own neighbour
        unset = np.flatnonzero(~known)
        if len(unset):  # no limit yet: the block's own k-th score, plus two margins
            kth = np.partition(score[unset], k - 1, axis=1)[:, k - 1] if size > k else np.inf
            with np.errstate(invalid="ignore"):
                score[unset] -= (kth + 2 * spread * (size_term[unset] + abs(kth)))[:, None]
            if not include_self:
                score[mine, query_rows[mine] - start] = np.inf

        hit = np.flatnonzero(score.min(axis=0) <= 0)  # rows that are a candidate for some query
        if len(hit):
            cand_q, at = np.nonzero(score[:, hit] <= 0)
            best_dist, best_rows = _refine_and_merge(
                X, queries, cand_q, start + hit[at], best_dist, best_rows, block * n_q
            )
        step = min(2 * step, block)
    return best_dist, best_rows


def _refine_and_merge(X, queries, cand_q, cand_rows, best_dist, best_rows, max_pairs):
    """Exact float64 distances for the candidate pairs (``cand_q`` sorted, as ``np.nonzero``
    gives it), merged into the running top-k."""
    chunk = max(1, max_pairs // (3 * X.shape[1]))  # gathered rows: <= 8 bytes per pair
    dist = np.empty(len(cand_q))
    for s in range(0, len(cand_q), chunk):
        diff = _gather(X, cand_rows[s:s + chunk]) - queries[cand_q[s:s + chunk]]
        dist[s:s + chunk] = np.einsum("ij,ij->i", diff, diff)

    k = best_dist.shape[1]
    new_query = np.empty(len(cand_q), dtype=bool)  # cand_q is sorted (np.nonzero's row order)
    new_query[:1] = True
    np.not_equal(cand_q[1:], cand_q[:-1], out=new_query[1:])
    touched = cand_q[new_query]
    q_all = np.concatenate([np.repeat(touched, k), cand_q])
    d_all = np.concatenate([best_dist[touched].ravel(), dist])
    r_all = np.concatenate([best_rows[touched].ravel(), cand_rows])
    order = np.lexsort((r_all, d_all, q_all))  # by query, then distance, then row
    first = np.searchsorted(q_all[order], touched)
    take = order[first[:, None] + np.arange(k)]
    best_dist[touched] = d_all[take]
    best_rows[touched] = r_all[take]
    return best_dist, best_rows


@functools.cache
def _threadpools():
    """The process's native thread pools (BLAS, OpenMP), found once: finding them takes ms."""
    return ThreadpoolController()
