"""ADASYN over-sampling (He, Bai, Garcia & Li, 2008) as an imbalanced-learn sampler: that
library checks the inputs, works out ``sampling_strategy_`` and converts the output back to the
input's type (and its estimator checks pass); the algorithm is ours, in NumPy. The only expensive
step, each minority point's k nearest neighbours among all rows, is
:func:`project.sampling.knn.kneighbors`; the output is written in chunks by a few threads.
"""

from __future__ import annotations

import numbers
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from imblearn.over_sampling.base import BaseOverSampler
from scipy import sparse
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from project.errors import InputError
from project.sampling.knn import MAX_BLOCK_BYTES, kneighbors, n_threads

#: Working memory of the k-NN search and the interpolation, all threads together, read at each
#: ``fit_resample``; not counted: the output and its index vectors (~50 bytes per synthetic row).
MEMORY_BUDGET_BYTES = 256 * 2**20

VARIANTS = ("he2008", "report")


class ADASYN(BaseOverSampler):
    """Adaptive synthetic over-sampling: more synthetic points where the minority is harder.

    For each class to over-sample (the *minority*), with N the count ``sampling_strategy`` asks
    to add (as in imbalanced-learn; ``"auto"``: up to the majority's count):

    ``variant="he2008"`` (the paper): G = round(N * beta). Minority point x_i has r_i =
    (majority points among its k nearest neighbours, itself excluded) / k and gets g_i = G * r_i
    / sum(r) synthetic points, rounded so that sum(g_i) == G exactly (largest remainders, ties
    to the lower index; imbalanced-learn's total can miss G). Each synthetic point is x_i +
    lambda * (x_zi - x_i), lambda ~ U(0, 1), x_zi uniform among x_i's k nearest *minority*
    neighbours.

    ``variant="report"``, the course report's function point for point: G = int(N * beta).
    x_i's neighbourhood is positions 1..k of the stable argsort of its squared distances to
    every row, its partners the minority rows there; its weight w_i = (k - partners) % k is 0
    when all its neighbours are majority (the hardest points) or all minority; g_i = int(G * w_i
    / sum(w)), so the total is usually under G; x_p is uniform among the partners. The stable
    sort fixes ties, which the report's ``np.argsort`` left to NumPy (duplicates only: an earlier
    copy of x_i takes position 0); the draws come from ``random_state``, not a global seed.

    Neighbours are exact Euclidean (float64), ties to the lower row, found in blocks whose
    working memory stays under :data:`MEMORY_BUDGET_BYTES`. ``n_neighbors`` (k) is at most the
    class size - 1 (``"he2008"``), or in 2..rows - 1 (``"report"``). After ``fit_resample``:
    ``ratios_`` and ``n_synthetic_per_sample_`` (``{class: per-sample array}``, in ``y``'s
    order), and for each synthetic row the row of ``X`` it starts from (``base_indices_``) and
    moves towards (``neighbor_indices_``).

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
    >>> report = ADASYN(variant="report", random_state=0)
    >>> _ = report.fit_resample(X, y)
    >>> int(report.n_synthetic_per_sample_[1].sum()) <= 80   # truncated, and points skipped
    True
    """

    _parameter_constraints: dict = {
        **BaseOverSampler._parameter_constraints,
        "beta": [Interval(numbers.Real, 0, np.inf, closed="neither")],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "variant": [StrOptions(set(VARIANTS))],
    }

    def __init__(self, *, sampling_strategy="auto", beta=1.0, n_neighbors=5, random_state=None,
                 variant="he2008"):
        super().__init__(sampling_strategy=sampling_strategy)
        self.beta = beta
        self.n_neighbors = n_neighbors
        self.random_state = random_state
        self.variant = variant

    def fit_resample(self, X, y, **params):
        """``(X_resampled, y_resampled)``: the original rows first, then the synthetic ones, in
        the inputs' types (array-like, DataFrame, CSR/CSC; ``y`` 1-D, Series or one-hot) and
        dtypes, except that integer or bool ``X`` becomes float64."""
        dtypes = getattr(X, "dtypes", None)
        if dtypes is not None and hasattr(X, "astype"):  # pandas: widen integer columns
            widen = {c: np.float64 for c, t in dtypes.items()
                     if isinstance(t, np.dtype) and t.kind in "iub"}
            if widen and X.columns.is_unique:
                X = X.astype(widen)
        return super().fit_resample(X, y, **params)

    def _check_X_y(self, X, y, accept_sparse=None):
        """imbalanced-learn's checks; scikit-learn's many-line NaN/infinity error made one line."""
        try:
            return super()._check_X_y(X, y, accept_sparse=accept_sparse)
        except ValueError as err:
            text = str(err).strip()
            if "\n" in text and text.startswith("Input X contains"):
                raise InputError(f"{text.splitlines()[0]} ADASYN needs finite values in every "
                                 "row of X") from None
            raise

    def _fit_resample(self, X, y):
        """The algorithm, on checked arrays: ``X`` an ndarray or CSR/CSC matrix, ``y`` 1-D."""
        is_sparse = sparse.issparse(X)
        x = X.tocsr() if is_sparse else X
        budget = MEMORY_BUDGET_BYTES
        rng = check_random_state(self.random_state)
        k, report = self.n_neighbors, self.variant == "report"
        classes, y_codes = _encode(y)
        code_of = {label: code for code, label in enumerate(classes.tolist())}
        todo = []
        for label, n_add in self.sampling_strategy_.items():
            G = int(n_add * self.beta) if report else int(round(n_add * self.beta))
            if G > 0:
                code = code_of[_scalar(label)]
                self._check_class(_scalar(label), int(np.sum(y_codes == code)), len(y))
                todo.append((code, label, G))

        # One k-NN pass over all rows for the points of every class to over-sample.
        query_rows = np.flatnonzero(np.isin(y_codes, [c for c, _, _ in todo]))
        if not todo:
            neighbours = np.zeros((0, k), dtype=np.int64)
        elif report:
            neighbours = kneighbors(x, query_rows, k + 1, include_self=True,
                                    memory_budget_bytes=budget)[:, 1:]
        else:
            neighbours = kneighbors(x, query_rows, k, memory_budget_bytes=budget)

        self.ratios_, self.n_synthetic_per_sample_ = {}, {}
        bases, targets, new_labels = [], [], []
        for code, label, G in todo:
            in_class = y_codes[query_rows] == code
            rows, nn = query_rows[in_class], neighbours[in_class]
            same = y_codes[nn] == code  # (n_class, k): is each neighbour of the same class?
            n_same = same.sum(axis=1)
            weights = (k - n_same) % k if report else k - n_same
            if not weights.any():
                raise InputError(f"no point of class {_scalar(label)!r} has a weight: " + (
                    "in variant='report' a point counts only if some but not all of its k "
                    "neighbours are of another class" if report else
                    "none has a neighbour of another class among its k nearest")
                    + "; ADASYN has nothing to adapt to (use SMOTE instead)")
            self.ratios_[label] = weights / weights.sum()
            if report:
                counts = (G * weights) // weights.sum()
                base = np.repeat(np.arange(len(rows)), counts)
                # the j-th same-class neighbour of each base point, j uniform in [0, n_same)
                j = rng.randint(0, n_same[base]) if len(base) else base
                same_first = np.argsort(~same, axis=1, kind="stable")
                target = nn[base, same_first[base, j]]
            else:
                counts = _largest_remainder(weights, G)
                base = np.repeat(np.arange(len(rows)), counts)
                class_nn = kneighbors(x[rows], np.arange(len(rows)), k,
                                      memory_budget_bytes=budget)
                target = rows[class_nn[base, rng.randint(0, k, size=len(base))]]
            self.n_synthetic_per_sample_[label] = counts
            bases.append(rows[base])
            targets.append(target)
            new_labels.append(np.full(len(base), classes[code], dtype=y.dtype))

        empty = np.zeros(0, np.int64)
        self.base_indices_ = np.concatenate([empty, *bases])
        self.neighbor_indices_ = np.concatenate([empty, *targets])
        steps = rng.uniform(size=len(self.base_indices_))
        out_dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)
        y_out = np.concatenate([y, *new_labels]).astype(y.dtype, copy=False)
        if is_sparse:
            start = x[self.base_indices_].astype(np.float64)  # in float64, as the dense path
            moves = sparse.diags(steps) @ (x[self.neighbor_indices_].astype(np.float64) - start)
            x_out = sparse.vstack([x, start + moves], format=X.format, dtype=out_dtype)
            return x_out, y_out
        x_out = np.empty((len(x) + len(steps), x.shape[1]), out_dtype)
        _fill_output(x, self.base_indices_, self.neighbor_indices_, steps, x_out, budget)
        return x_out, y_out

    def _check_class(self, label, n, n_rows):
        """Raise InputError if class ``label`` (``n`` samples) cannot be over-sampled."""
        k = self.n_neighbors
        if self.variant == "report":
            if k < 2:
                raise InputError("n_neighbors=1 with variant='report': every weight (k - minority "
                                 "neighbours) % k is 0; use n_neighbors >= 2")
            if k > n_rows - 1:
                raise InputError(f"n_neighbors={k} is too large for {n_rows} rows: at most "
                                 f"{n_rows - 1}")
            return
        if n < 2:
            raise InputError(f"class {label!r} has {n} sample; ADASYN needs at least 2 samples in "
                             "each class it over-samples")
        if k > n - 1:
            raise InputError(f"n_neighbors={k} is too large for class {label!r} with {n} samples: "
                             f"n_neighbors can be at most n_minority - 1 = {n - 1}")


def _scalar(label):
    """A NumPy scalar label as the plain Python value (shows as 1, not np.int64(1))."""
    return label.item() if isinstance(label, np.generic) else label


def _encode(labels):
    """(sorted distinct labels, each label's index among them); bincount for small integers."""
    if labels.dtype.kind in "iub" and len(labels):
        ints = labels.astype(np.int64, copy=False)
        low = int(ints.min())
        if int(ints.max()) - low < 2**20:
            present = np.bincount(ints - low) > 0
            classes = (np.flatnonzero(present) + low).astype(labels.dtype)
            return classes, (np.cumsum(present) - 1)[ints - low]
    return np.unique(labels, return_inverse=True)


def _largest_remainder(weights, total):
    """Integer counts proportional to integer ``weights`` that sum to ``total`` exactly: floors,
    then one each to the largest remainders, ties to the lower index."""
    weights = np.asarray(weights, dtype=np.int64)
    counts, remainders = np.divmod(total * weights, weights.sum())
    short = total - int(counts.sum())
    counts[np.argsort(-remainders, kind="stable")[:short]] += 1
    return counts


def _fill_output(x, base, target, steps, out, budget_bytes):
    """out = [x; x[base] + steps * (x[target] - x[base])], the rows split over threads."""
    n, n_jobs = len(x), n_threads()
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
    """out[i] = X[base[i]] + steps[i] * (X[target[i]] - X[base[i]]), in float64, by chunks
    (in place when ``out`` is float64; else through a float64 scratch array, then cast)."""
    d = X.shape[1]
    chunk = max(1, min(budget_bytes, MAX_BLOCK_BYTES) // (16 * d + 8))
    in_place = out.dtype == np.float64
    start_rows = np.empty((min(chunk, len(base)), d))
    moves = None if in_place else np.empty_like(start_rows)
    for s in range(0, len(base), chunk):
        size = min(chunk, len(base) - s)
        a = start_rows[:size]
        b = out[s:s + size] if in_place else moves[:size]
        _take_rows(X, base[s:s + size], a)
        _take_rows(X, target[s:s + size], b)
        b -= a
        b *= steps[s:s + size, None]
        b += a
        if not in_place:
            out[s:s + size] = b


def _take_rows(X, rows, out):
    """out[...] = X[rows], with no temporary array when the dtypes agree."""
    if X.dtype == out.dtype:
        np.take(X, rows, axis=0, out=out)
    else:
        out[...] = X[rows]
