"""ADASYN over-sampling (He, Bai, Garcia & Li, 2008) in pure NumPy.

A drop-in for ``imblearn.over_sampling.ADASYN`` (same parameters, ``fit_resample``, usable in an
imbalanced-learn ``Pipeline``) that is faithful to the paper: the number of synthetic samples is
exactly G, and every minority point with majority neighbours gets its share. The course report's
variant is available as ``variant="report"``.

How it stays fast and small: the only expensive step is finding, for each minority point, its k
nearest neighbours among all n rows. The minority points are the queries; the n rows are walked in
blocks sized from a memory budget (:data:`MEMORY_BUDGET_BYTES`), so no n x n (or even
n_minority x n) matrix is ever built. Each block is screened with one float32 matrix product
(``||b||^2 - 2 q.b``, BLAS), with an error margin that cannot drop a true neighbour; the few
candidates that pass are re-measured exactly in float64 and merged into a running top-k, ties broken
by the lower row index. The result is therefore the exact float64 k-NN, and does not depend on the
block size. The rows are split over a few threads (NumPy releases the GIL; BLAS is held to one
thread inside each), as is the writing of the output.
"""

from __future__ import annotations

import functools
import numbers
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, OneToOneFeatureMixin
from sklearn.utils import check_random_state
from threadpoolctl import ThreadpoolController

from project.errors import InputError

#: Working memory for the k-NN search and the interpolation, in bytes, all threads together. Not
#: counted: the output arrays and a few index vectors of the output's length (about 50 bytes per
#: synthetic row). Read at each ``fit_resample``.
MEMORY_BUDGET_BYTES = 256 * 2**20

VARIANTS = ("he2008", "report")
STRATEGIES = ("auto", "not majority", "minority", "not minority", "all")

# Distance blocks larger than this gain nothing (they fall out of the CPU caches).
_MAX_BLOCK_BYTES = 4 * 2**20
_EPS32 = float(np.finfo(np.float32).eps)


class ADASYN(OneToOneFeatureMixin, BaseEstimator):
    """Adaptive synthetic over-sampling: more synthetic points where the minority is harder.

    For each class to over-sample (the *minority* class below; every other class counts as
    *majority*, one-vs-rest):

    1. G = round((target - m_s) * beta), where m_s is the minority count and target is set by
       ``sampling_strategy`` (``"auto"``: the majority count m_l, so G = (m_l - m_s) * beta).
    2. For each minority point x_i, r_i = (number of majority points among its k nearest
       neighbours in the whole data, itself excluded) / k, and r_hat_i = r_i / sum(r).
    3. x_i gets g_i synthetic points, g_i being r_hat_i * G rounded so that sum(g_i) == G exactly:
       each g_i is first rounded down, then the G - sum(floor) left over go, one each, to the
       points with the largest fractional parts (ties to the lower index). This is deterministic
       and done in integer arithmetic. (imbalanced-learn rounds each g_i to the nearest integer,
       so its total can miss G by a few.)
    4. Each synthetic point is x_i + lambda * (x_zi - x_i), lambda ~ U(0, 1), x_zi drawn uniformly
       from x_i's k nearest *minority* neighbours (itself excluded).

    ``variant="report"`` reproduces the course report's function instead. It finds x_i's k
    nearest neighbours in the whole data once, and interpolates only towards the minority points
    inside that neighbourhood; g_i = round(r_hat_i * G) (round half to even). A minority point
    whose neighbourhood holds no other minority point (r_i = 1: exactly the hardest points, which
    ADASYN means to weight most) silently gets no synthetic points, so the total falls short of
    G. ``"he2008"`` (the default) follows the paper: neighbours for interpolation come from the
    minority class alone, so every point with r_i > 0 gets its share.

    Neighbours are exact Euclidean neighbours (float64), ties broken by the lower row index.
    Memory: the search walks the rows in blocks, so its working memory stays under
    :data:`MEMORY_BUDGET_BYTES` (256 MB) whatever n is; no n x n matrix is ever built.

    Args:
        sampling_strategy: which classes to over-sample and to what count. ``"auto"`` (same as
            ``"not majority"``): every class but the largest, up to the largest count. Also
            ``"minority"``, ``"not minority"``, ``"all"``; a float (binary only): the wanted
            minority/majority ratio after resampling; a dict ``{class: wanted count}``; or a
            callable ``y -> dict``, as in imbalanced-learn.
        beta: balance level, a finite number > 0; 1.0 fully balances.
        n_neighbors: k, the neighbourhood size, an int >= 1 and at most (minority count - 1).
        random_state: ``None``, an int seed or a ``np.random.RandomState``.
        variant: ``"he2008"`` (the paper) or ``"report"`` (the course report's function).

    Attributes (after ``fit_resample``):
        sampling_strategy_: ``{class: number of synthetic samples asked for}`` (G per class).
        ratios_: ``{class: r_hat}``, the normalised weight of each sample of that class, in the
            order the samples appear in ``y``.
        n_synthetic_per_sample_: ``{class: g}``, synthetic samples made from each such sample.
        base_indices_: for each synthetic row (in output order), the row of ``X`` it starts from.
        neighbor_indices_: for each synthetic row, the row of ``X`` it moves towards.
        n_features_in_, feature_names_in_: as in scikit-learn.

    Example:

    >>> import numpy as np
    >>> from project.sampling import ADASYN
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0.0, 1.0, (90, 2)), rng.normal(1.0, 1.0, (10, 2))])
    >>> y = np.array([0] * 90 + [1] * 10)
    >>> X_res, y_res = ADASYN(random_state=0).fit_resample(X, y)
    >>> X_res.shape, np.bincount(y_res).tolist()
    ((180, 2), [90, 90])
    >>> bool((X_res[:100] == X).all())        # the original rows come first
    True
    """

    _sampling_type = "over-sampling"  # what imbalanced-learn's samplers call themselves

    def __init__(
        self,
        sampling_strategy="auto",
        beta=1.0,
        n_neighbors=5,
        random_state=None,
        variant="he2008",
    ):
        self.sampling_strategy = sampling_strategy
        self.beta = beta
        self.n_neighbors = n_neighbors
        self.random_state = random_state
        self.variant = variant

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def fit(self, X, y):
        """Check the inputs and set ``sampling_strategy_``; generates nothing. Returns self."""
        self._fit(X, y)
        return self

    def fit_resample(self, X, y):
        """Resample ``X`` and ``y``: the original rows first, then the synthetic ones.

        Args:
            X: array-like or pandas DataFrame, shape (n_samples, n_features), numeric, finite.
                Sparse matrices are not supported.
            y: class labels (ints, bools, integral floats or strings), shape (n_samples,); a
                pandas Series or one-column DataFrame, or a one-hot 2-D array.

        Returns:
            ``(X_resampled, y_resampled)`` of the input's types: a DataFrame keeps its columns and
            a Series its name; a list gives a list. Float ``X`` keeps its dtype (float32 stays
            float32); integer or bool ``X`` comes back as float64 (interpolated points are not
            integers). ``y`` keeps its dtype.
        """
        x, labels, y_back, classes, y_codes = self._fit(X, y)
        budget = MEMORY_BUDGET_BYTES
        rng = check_random_state(self.random_state)
        k = self.n_neighbors
        code_of = {_scalar(label): code for code, label in enumerate(classes)}
        todo = [(code_of[label], label) for label, G in self.sampling_strategy_.items() if G > 0]

        # One k-NN pass over all rows for the points of every class to over-sample.
        query_rows = np.flatnonzero(np.isin(y_codes, [c for c, _ in todo]))
        neighbours = _kneighbors(x, query_rows, k, budget)

        self.ratios_, self.n_synthetic_per_sample_ = {}, {}
        bases, targets, steps, new_labels = [], [], [], []
        for code, label in todo:
            in_class = y_codes[query_rows] == code
            rows, nn = query_rows[in_class], neighbours[in_class]
            same = y_codes[nn] == code  # (n_class, k): is each neighbour of the same class?
            n_other = k - same.sum(axis=1)
            if not n_other.any():
                raise InputError(
                    f"Not any neighbours belong to the majority class for class {label!r}: every "
                    f"r_i is 0, so ADASYN has nothing to adapt to; use SMOTE instead"
                )
            G = self.sampling_strategy_[label]
            self.ratios_[label] = n_other / n_other.sum()
            if self.variant == "he2008":
                counts = _largest_remainder(n_other, G)
                base = np.repeat(np.arange(len(rows)), counts)
                class_nn = _kneighbors(x[rows], np.arange(len(rows)), k, budget)
                target = rows[class_nn[base, rng.randint(0, k, size=len(base))]]
            else:
                counts = np.rint(G * n_other / n_other.sum()).astype(np.int64)
                n_same = same.sum(axis=1)
                counts[n_same == 0] = 0
                base = np.repeat(np.arange(len(rows)), counts)
                # the j-th same-class neighbour of each base point, j uniform in [0, n_same)
                j = rng.randint(0, n_same[base]) if len(base) else base
                same_first = np.argsort(~same, axis=1, kind="stable")
                target = nn[base, same_first[base, j]]
            self.n_synthetic_per_sample_[label] = counts
            bases.append(rows[base])
            targets.append(target)
            steps.append(rng.uniform(size=len(base)))
            new_labels.append(np.full(len(base), classes[code]))

        empty = np.zeros(0, np.int64)
        self.base_indices_ = np.concatenate([empty, *bases])
        self.neighbor_indices_ = np.concatenate([empty, *targets])
        out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        x_out = np.empty((len(x) + len(self.base_indices_), x.shape[1]), out_dtype)
        _fill_output(x, self.base_indices_, self.neighbor_indices_,
                     np.concatenate([np.zeros(0), *steps]), x_out, budget)
        y_out = np.concatenate([labels, *new_labels]).astype(labels.dtype, copy=False)
        return _like(X, x_out), y_back(y_out)

    # --- checks -----------------------------------------------------------------------------

    def _check_params(self):
        if self.variant not in VARIANTS:
            raise InputError(f"unknown variant {self.variant!r}: choose one of {VARIANTS}")
        beta = self.beta
        if (isinstance(beta, bool) or not isinstance(beta, numbers.Real)
                or not np.isfinite(beta) or beta <= 0):
            raise InputError(f"beta must be a finite number > 0 (0 < beta < inf), got {beta!r}")
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise InputError(f"n_neighbors must be an int >= 1, got {k!r}")

    def _fit(self, X, y):
        """Check everything, set the input attributes and sampling_strategy_."""
        self._check_params()
        x = _as_features(X)
        labels, y_back = _as_labels(y)
        if len(x) != len(labels):
            raise InputError(
                f"X and y have different lengths: {len(x)} rows and {len(labels)} labels"
            )
        self._set_input_attributes(X, x)
        classes, y_codes = _encode(labels)
        self.sampling_strategy_ = self._class_targets(labels, classes, y_codes)
        return x, labels, y_back, classes, y_codes

    def _set_input_attributes(self, X, x):
        self.n_features_in_ = x.shape[1]
        columns = getattr(X, "columns", None)
        if columns is not None and all(isinstance(c, str) for c in columns):
            self.feature_names_in_ = np.asarray(list(columns), dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _class_targets(self, labels, classes, y_codes):
        """{class: G}, after checking that every class to over-sample can be."""
        counts = np.bincount(y_codes, minlength=len(classes))
        if len(classes) < 2:
            raise InputError(
                f"y has only one class ({_scalar(classes[0])!r}); ADASYN needs at least two classes"
            )
        wanted = _wanted_counts(self.sampling_strategy, labels, classes, counts)
        targets = {}
        for code in sorted(wanted):
            label, n = _scalar(classes[code]), int(counts[code])
            G = int(round((wanted[code] - n) * self.beta))
            targets[label] = G
            if G == 0:
                continue
            if n < 2:
                raise InputError(
                    f"class {label!r} has {n} sample; ADASYN needs at least 2 samples in each "
                    f"class it over-samples"
                )
            if self.n_neighbors > n - 1:
                raise InputError(
                    f"n_neighbors={self.n_neighbors} is too large for class {label!r} with {n} "
                    f"samples: n_neighbors can be at most n_minority - 1 = {n - 1}"
                )
        return targets


def _scalar(label):
    """A NumPy scalar label as the plain Python value (shows as 1, not np.int64(1))."""
    return label.item() if isinstance(label, np.generic) else label


# --- sampling strategy ---------------------------------------------------------------------------


def _wanted_counts(strategy, labels, classes, counts):
    """{class code: count wanted after over-sampling} for the classes to over-sample."""
    majority, minority = int(np.argmax(counts)), int(np.argmin(counts))
    n_max = int(counts[majority])
    if isinstance(strategy, str):
        picked = {
            "auto": [c for c in range(len(classes)) if c != majority],
            "not majority": [c for c in range(len(classes)) if c != majority],
            "minority": [minority],
            "not minority": [c for c in range(len(classes)) if c != minority],
            "all": list(range(len(classes))),
        }.get(strategy)
        if picked is None:
            raise InputError(
                f"unknown sampling_strategy {strategy!r}: choose one of {STRATEGIES}, a float, "
                f"a dict or a callable"
            )
        return {c: n_max for c in picked}
    if isinstance(strategy, numbers.Real) and not isinstance(strategy, bool):
        if len(classes) != 2:
            raise InputError("a float sampling_strategy is for binary y only; use a dict")
        if not 0 < strategy <= 1:
            raise InputError(f"a float sampling_strategy must be in (0, 1], got {strategy}")
        wanted = int(n_max * strategy)
        if wanted < counts[minority]:
            raise InputError(
                f"sampling_strategy={strategy} asks for {wanted} minority samples, fewer than "
                f"the {counts[minority]} there are; ADASYN only adds samples: increase it"
            )
        return {minority: wanted}
    if callable(strategy):
        strategy = strategy(labels)
    if isinstance(strategy, dict):
        index = {label: code for code, label in enumerate(classes.tolist())}
        wanted = {}
        for label, count in strategy.items():
            key = _scalar(label)
            if key not in index:
                raise InputError(f"sampling_strategy names class {label!r}, which is not in y")
            code = index[key]
            if count < counts[code]:
                raise InputError(
                    f"sampling_strategy asks for {count} samples of class {label!r}, which has "
                    f"{counts[code]}; ADASYN only adds samples"
                )
            wanted[code] = int(count)
        return wanted
    raise InputError(
        f"sampling_strategy must be a str, a float, a dict or a callable, got {strategy!r}"
    )


def _largest_remainder(weights, total):
    """Integer counts proportional to integer ``weights`` that sum to ``total`` exactly.

    Floor of ``total * w / sum(w)``; the shortfall goes one each to the largest remainders, ties
    to the lower index. All in integer arithmetic, so it is exact and deterministic.
    """
    weights = np.asarray(weights, dtype=np.int64)
    scaled = total * weights
    counts, remainders = np.divmod(scaled, weights.sum())
    short = total - int(counts.sum())
    counts[np.argsort(-remainders, kind="stable")[:short]] += 1
    return counts


# --- k nearest neighbours, blocked -------------------------------------------------------------


def _block_rows(n_queries, n_features, budget_bytes):
    """How many reference rows one block may hold so that its arrays fit in ``budget_bytes``.

    Per (reference row, query) pair a block holds a float32 score (4 bytes) and, in the worst
    case where every pair is a candidate, a mask byte and the candidate's indices, distance and
    merge order (56 bytes); per reference row, the row as float64 and as float32. At least one
    row, so the bound holds while 64 * n_queries <= budget_bytes.
    """
    per_row = 64 * n_queries + 12 * n_features + 16
    rows = min(budget_bytes // per_row, _MAX_BLOCK_BYTES // (4 * max(n_queries, 1)))
    return max(1, int(rows))


def _kneighbors(X, query_rows, k, budget_bytes, n_jobs=None):
    """The k nearest rows of ``X`` to each row ``X[query_rows]``, the row itself excluded.

    Args:
        X: (n, d) float array, the reference rows.
        query_rows: (q,) sorted int array, the rows of ``X`` to query.
        k: neighbours per query, at most n - 1.
        budget_bytes: bound on the working memory (all threads together).
        n_jobs: threads, each scanning a contiguous part of the rows; default: the CPUs (<= 8).

    Returns:
        (q, k) int64 rows of ``X``, nearest first: exact float64 distance, ties to the lower row.
        The result does not depend on ``budget_bytes`` or ``n_jobs``.
    """
    n, d = X.shape
    queries = X[query_rows].astype(np.float64)
    if len(queries) == 0:
        return np.zeros((0, k), dtype=np.int64)
    n_jobs = n_jobs or _n_threads()
    block = _block_rows(len(queries), d, budget_bytes // n_jobs)
    n_jobs = max(1, min(n_jobs, n // (4 * block)))
    edges = np.linspace(0, n, n_jobs + 1).astype(int)
    with _threadpools().limit(limits=1, user_api="blas"), ThreadPoolExecutor(n_jobs) as pool:
        parts = list(pool.map(
            lambda i: _scan(X, queries, query_rows, edges[i], edges[i + 1], k, block),
            range(n_jobs),
        ))
    dist = np.concatenate([p[0] for p in parts], axis=1)
    rows = np.concatenate([p[1] for p in parts], axis=1)
    nearest = np.lexsort((rows, dist), axis=1)[:, :k]
    return np.take_along_axis(rows, nearest, axis=1)


def _scan(X, queries, query_rows, lo, hi, k, block):
    """Running top-k over rows ``lo:hi`` of ``X``: (distances, rows), each (q, k), sorted.

    Each block is screened with one float32 product whose entry (query q, row x) is
    ``||x||^2 - 2 q.x - limit_q`` (coordinates centred on the queries' mean; the squared distance
    less ``||q||^2``): x is a candidate for q when that is <= 0. ``limit`` is the current k-th best (exact) plus a margin that bounds the
    float32 error, so no true neighbour is ever screened out. Candidates are measured exactly
    (float64) and merged. Until a query has k neighbours, its limit is the k-th smallest score of
    the block itself (plus margins). Blocks start small and double, so that the limits are tight
    before the blocks are large.
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
    best_dist = np.full((n_q, k), np.inf)
    best_rows = np.full((n_q, k), len(X), dtype=np.int64)

    start, step = lo, min(block, 4 * k + 256)
    while start < hi:
        stop = min(start + step, hi)
        size = stop - start
        ref = X[start:stop] - center
        norms = np.einsum("ij,ij->i", ref, ref)
        rhs[:d, :size] = ref.T
        rhs[d, :size] = norms
        ref_max = np.sqrt(norms.max())
        # Error bound of the float32 score: rounded inputs and a (d + 2)-term dot product; 8x spare.
        kth_key = best_dist[:, -1] - q_norm2
        known = np.isfinite(kth_key)
        size_term = ref_max**2 + 2 * q_norm * ref_max + np.abs(np.where(known, kth_key, 0.0))
        margin = 4 * (d + 4) * _EPS32 * size_term
        lhs[:, d + 1] = np.where(known, -(kth_key + margin), 0.0)
        score = np.matmul(lhs, rhs[:, :size], out=scores[: n_q * size].reshape(n_q, size))
        first, last = np.searchsorted(query_rows, [start, stop])
        mine = np.arange(first, last)
        score[mine, query_rows[mine] - start] = np.inf  # a point is not its own neighbour
        unset = np.flatnonzero(~known)
        if len(unset):  # no limit yet: the block's own k-th score, plus two margins
            kth = np.partition(score[unset], k - 1, axis=1)[:, k - 1] if size > k else np.inf
            with np.errstate(invalid="ignore"):
                score[unset] -= (kth + 2 * 4 * (d + 4) * _EPS32 * (size_term[unset] + abs(kth)))[
                    :, None
                ]
            score[mine, query_rows[mine] - start] = np.inf

        hit = np.flatnonzero(score.min(axis=0) <= 0)  # rows that are a candidate for some query
        if len(hit):
            cand_q, at = np.nonzero(score[:, hit] <= 0)
            best_dist, best_rows = _refine_and_merge(
                X, queries, cand_q, start + hit[at], best_dist, best_rows, block * n_q
            )
        start, step = stop, min(2 * step, block)
    return best_dist, best_rows


def _refine_and_merge(X, queries, cand_q, cand_rows, best_dist, best_rows, max_pairs):
    """Exact float64 distances for the candidate pairs, merged into the running top-k."""
    chunk = max(1, max_pairs // (3 * X.shape[1]))  # gathered rows: <= 8 bytes per pair
    dist = np.empty(len(cand_q))
    for s in range(0, len(cand_q), chunk):
        diff = X[cand_rows[s:s + chunk]] - queries[cand_q[s:s + chunk]]
        dist[s:s + chunk] = np.einsum("ij,ij->i", diff, diff)

    k = best_dist.shape[1]
    touched = np.unique(cand_q)
    q_all = np.concatenate([np.repeat(touched, k), cand_q])
    d_all = np.concatenate([best_dist[touched].ravel(), dist])
    r_all = np.concatenate([best_rows[touched].ravel(), cand_rows])
    order = np.lexsort((r_all, d_all, q_all))  # by query, then distance, then row
    first = np.searchsorted(q_all[order], touched)
    take = order[first[:, None] + np.arange(k)]
    best_dist[touched] = d_all[take]
    best_rows[touched] = r_all[take]
    return best_dist, best_rows


def _fill_output(x, base, target, steps, out, budget_bytes):
    """out = [x; x[base] + steps * (x[target] - x[base])], the rows split over threads."""
    n, n_jobs = len(x), _n_threads()
    old = np.linspace(0, n, n_jobs + 1).astype(int)
    new = np.linspace(0, len(base), n_jobs + 1).astype(int)

    def fill(i):
        out[old[i]:old[i + 1]] = x[old[i]:old[i + 1]]
        part = slice(new[i], new[i + 1])
        _interpolate(x, base[part], target[part], steps[part], out[n + new[i]:n + new[i + 1]],
                     budget_bytes // n_jobs)

    with ThreadPoolExecutor(n_jobs) as pool:
        list(pool.map(fill, range(n_jobs)))


def _interpolate(X, base, target, steps, out, budget_bytes):
    """out[i] = X[base[i]] + steps[i] * (X[target[i]] - X[base[i]]), in float64, by chunks."""
    d = X.shape[1]
    chunk = max(1, min(budget_bytes, _MAX_BLOCK_BYTES) // (16 * d + 8))
    start_rows = np.empty((min(chunk, len(base)), d))
    moves = np.empty_like(start_rows)
    for s in range(0, len(base), chunk):
        size = min(chunk, len(base) - s)
        a, b = start_rows[:size], moves[:size]
        a[...] = X[base[s:s + size]]
        b[...] = X[target[s:s + size]]
        b -= a
        b *= steps[s:s + size, None]
        b += a
        out[s:s + size] = b


@functools.cache
def _threadpools():
    """The process's native thread pools (BLAS, OpenMP), found once: finding them takes ms."""
    return ThreadpoolController()


def _n_threads():
    """Threads for the k-NN scan and the output: the CPUs this process may use, at most 8."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    return max(1, min(os.cpu_count() or 1, 8))


def _encode(labels):
    """(classes, codes): the sorted distinct labels, and each label's index among them."""
    if labels.dtype.kind in "iub" and len(labels):  # small ints: counting beats sorting
        ints = labels.astype(np.int64, copy=False)
        low = int(ints.min())
        if int(ints.max()) - low < 2**20:
            present = np.bincount(ints - low) > 0
            classes = (np.flatnonzero(present) + low).astype(labels.dtype)
            return classes, (np.cumsum(present) - 1)[ints - low]
    return np.unique(labels, return_inverse=True)


# --- input and output types --------------------------------------------------------------------


def _is_pandas(obj, kind):
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, getattr(pd, kind))


def _as_features(X):
    """X as a numeric array (n, d), checked; raises InputError, or TypeError if sparse."""
    if sparse.issparse(X):
        raise TypeError("ADASYN does not support sparse X; pass a dense array (X.toarray())")
    try:
        x = np.asarray(X)
    except ValueError as err:  # ragged lists
        raise InputError(f"X must be a 2-D numeric array: {err}") from None
    if x.ndim != 2:
        raise InputError(f"X must be 2-D (n_samples, n_features), got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError(f"X must be numeric, got dtype {x.dtype}") from None
    if x.shape[1] == 0 or x.shape[0] == 0:
        raise InputError(f"X must have at least one row and one column, got shape {x.shape}")
    if x.dtype.kind == "f" and not np.isfinite(x.sum()) and not np.isfinite(x).all():
        raise InputError("X contains NaN or infinity; ADASYN needs finite values")
    return x


def _as_labels(y):
    """(1-D label array, function that turns resampled labels back into y's type)."""
    if _is_pandas(y, "Series"):
        return y.to_numpy(), lambda out: type(y)(out, name=y.name, dtype=y.dtype)
    if _is_pandas(y, "DataFrame"):
        if y.shape[1] != 1:
            raise InputError("Multilabel and multioutput targets are not supported.")
        labels = _check_label_values(y.iloc[:, 0].to_numpy())
        dtypes = y.dtypes.to_dict()
        return labels, lambda out: type(y)(out[:, None], columns=y.columns).astype(dtypes)
    as_list = isinstance(y, list)
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim == 2:  # one-hot: exactly one 1 per row
        if not (np.isin(arr, (0, 1)).all() and (arr.sum(axis=1) == 1).all()):
            raise InputError("Multilabel and multioutput targets are not supported.")
        width = arr.shape[1]
        return arr.argmax(axis=1), lambda out: np.eye(width, dtype=arr.dtype)[out]
    if arr.ndim != 1:
        raise InputError(f"y must be 1-D, got shape {arr.shape}")
    labels = _check_label_values(arr)
    return labels, (lambda out: out.tolist()) if as_list else (lambda out: out)


def _check_label_values(labels):
    kind = labels.dtype.kind
    if kind == "f" and not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
        raise InputError(
            "Unknown label type: y holds non-integer floats (e.g. 0.5); ADASYN needs class "
            "labels (ints, integral floats or strings)"
        )
    if kind not in "biufUSO":
        raise InputError(f"Unknown label type: y has dtype {labels.dtype}")
    if kind == "O":
        try:
            np.unique(labels)
        except TypeError:
            raise InputError("Unknown label type: y mixes labels that cannot be sorted") from None
    return labels


def _like(X, x_out):
    """``x_out`` as the type of ``X``: DataFrame (same columns), list, or array."""
    if _is_pandas(X, "DataFrame"):
        return type(X)(x_out, columns=X.columns)
    if isinstance(X, list):
        return x_out.tolist()
    return x_out
