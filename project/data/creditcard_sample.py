"""Generator of the bundled synthetic credit-card sample (``assets/creditcard_sample.csv.gz``):
the real file cannot ship, so this imitates its schema and shape, not its content. Normal rows
are centred Gaussians whose spread shrinks from V1 to V28 (as PCA components do); frauds are
shifted along the components that separate frauds in the real data, a third of them only
slightly, so that detection is not trivial.

Example:

>>> df = make_creditcard_sample(n_rows=2000, n_fraud=20, seed=0)
>>> int(df["Class"].sum()), list(df.columns[:2])
(20, ['Time', 'V1'])
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from project.data.creditcard import COLUMNS
from project.io import atomic_path

# Mean shift of frauds per component (in units of that component's spread); the signs follow the
# real data's fraud means for these components.
_FRAUD_SHIFT = {
    1: -1.0, 2: 1.0, 3: -2.0, 4: 2.0, 5: -0.8, 6: -0.5, 7: -1.5, 9: -1.0, 10: -2.2,
    11: 2.0, 12: -2.4, 14: -2.8, 16: -1.6, 17: -2.4, 18: -1.0,
}


def make_creditcard_sample(n_rows: int = 32_000, n_fraud: int = 160, seed: int = 0) -> pd.DataFrame:
    """A synthetic frame with the creditcard.csv schema, ``n_fraud`` of its ``n_rows`` rows with
    ``Class = 1`` (160 of 32,000 is 0.5%; the real file has 0.17%); the same seed, the same
    frame."""
    rng = np.random.default_rng(seed)
    n_normal = n_rows - n_fraud
    spread = np.linspace(2.0, 0.3, 28)  # PCA-like: variance falls with the component index
    normal = rng.normal(0.0, 1.0, (n_normal, 28)) * spread

    shift = np.zeros(28)
    for component, s in _FRAUD_SHIFT.items():
        shift[component - 1] = s
    strength = np.where(rng.random(n_fraud) < 2 / 3, 1.0, 0.35)[:, None]  # a third barely shifted
    fraud = (rng.normal(0.0, 1.4, (n_fraud, 28)) + strength * shift) * spread

    v = np.vstack([normal, fraud])
    amount = np.concatenate([rng.lognormal(3.0, 1.4, n_normal), rng.lognormal(2.6, 1.8, n_fraud)])
    label = np.concatenate([np.zeros(n_normal, np.int64), np.ones(n_fraud, np.int64)])
    order = rng.permutation(n_rows)
    df = pd.DataFrame(v[order].round(4), columns=[f"V{i}" for i in range(1, 29)])
    df.insert(0, "Time", np.sort(rng.integers(0, 172_792, n_rows)).astype(float))
    df["Amount"] = amount[order].round(2)
    df["Class"] = label[order]
    return df[COLUMNS]


def write_creditcard_sample(path, **kwargs) -> Path:
    """Write :func:`make_creditcard_sample` as a gzipped CSV (same bytes every time), atomically."""
    df = make_creditcard_sample(**kwargs)
    return write_gzip(path, df.to_csv(index=False, float_format="%.6g").encode())


def write_gzip(path, data: bytes) -> Path:
    """Write ``data`` gzipped with a fixed header (same bytes every time), atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(data)
    return Path(path)
