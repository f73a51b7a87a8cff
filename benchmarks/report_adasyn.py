"""The course report's ADASYN, transcribed from its description (``../shared/REPORT.md``) as
Python loops for ``y`` in {0, 1}: the slow peer of :mod:`benchmarks.adasyn` and the oracle of
``variant="report"`` in ``tests/test_adasyn.py`` (the algorithm: :class:`project.sampling.ADASYN`).

Example:

>>> X = np.array([[0.0], [1.0], [1.2], [5.0], [6.0], [7.0]])
>>> y = np.array([1, 1, 0, 0, 0, 0])
>>> counts, partners, synthetic = report_loop(X, y, k=2, beta=1.0, rng=np.random.RandomState(0))
>>> counts.tolist(), partners, len(synthetic)
([1, 1], [[1], [0]], 2)
"""

import numpy as np


def report_loop(X, y, k: int, beta: float, rng, sort_kind: str | None = None):
    """Run the report's loop on ``X``, ``y`` (1 the minority) with ``k`` neighbours and ``beta``.

    ``rng`` stands in for the report's global NumPy seed (``np.random.RandomState(50)`` draws what
    ``np.random.seed(50)`` then ``np.random.randint`` / ``uniform`` draw); ``sort_kind`` is
    ``np.argsort``'s (None: the report's default sort; ``"stable"``: ties to the lower row).
    Returns ``(counts, partners, synthetic)``: the per-point counts (minority points in data
    order), each minority point's partner list, and ``(base row, partner row, lambda, new row)``
    for every synthetic row in output order.
    """
    n_minority, n_majority = int(np.sum(y == 1)), int(np.sum(y == 0))
    G = int((n_majority - n_minority) * beta)
    points, partners, weights = [], [], []
    for m in range(len(X)):
        if y[m] != 1:
            continue
        distances = np.sum((X - X[m]) ** 2, axis=1)
        nearest = np.argsort(distances, kind=sort_kind)[1:k + 1]
        mates = [int(j) for j in nearest if y[j] == 1]
        points.append(m)
        partners.append(mates)
        weights.append((k - len(mates)) % k)
    counts = [int(G * w / sum(weights)) for w in weights]
    synthetic = []
    for m, mates, count in zip(points, partners, counts, strict=True):
        for _ in range(count):
            partner = mates[rng.randint(len(mates))]
            lam = rng.uniform()
            synthetic.append((m, partner, lam, X[m] + (X[partner] - X[m]) * lam))
    return np.array(counts), partners, synthetic
