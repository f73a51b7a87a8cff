"""QQP pairs prepared as the course report did (:func:`load_qqp`).

Example:

>>> from project.data.qqp import SAMPLE_PATH
>>> data = load_qqp(SAMPLE_PATH, seed=0)
>>> data.dropped_missing, len(data.train) + len(data.validation)
(3, 2397)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from project.data.qqp import LABEL, SAMPLE_PATH, is_synthetic, read_qqp
from project.errors import InputError, SettingError
from project.settings import number


def balance_classes(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Undersample the majority class to the minority's count (seeded), in shuffled order."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(frame[LABEL].to_numpy() == c) for c in (0, 1)]
    n = min(len(g) for g in groups)
    if n == 0:
        raise SettingError("cannot {balance} classes: the data has only one class")
    keep = np.concatenate([rng.choice(g, n, replace=False) for g in groups])
    return frame.iloc[rng.permutation(keep)].reset_index(drop=True)


def subsample(frame: pd.DataFrame, fraction: float, seed: int = 0) -> pd.DataFrame:
    """A seeded, stratified random ``fraction`` (0 < fraction <= 1) of the rows (at least one
    per class)."""
    number("fraction", fraction, low=0, low_open=True, high=1)
    if fraction == 1:
        return frame.reset_index(drop=True)
    rng, labels, chosen = np.random.default_rng(seed), frame[LABEL].to_numpy(), []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(rows))))
        chosen.append(rng.choice(rows, min(k, len(rows)), replace=False))
    return frame.iloc[rng.permutation(np.concatenate(chosen))].reset_index(drop=True)


def split(frame: pd.DataFrame, validation_fraction: float = 0.1, seed: int = 0,
          test_fraction: float | None = None):
    """Seeded split, stratified by label, into ``(train, validation, test)`` (``test`` None
    without ``test_fraction``). As scikit-learn's ``train_test_split``, validation holds
    ceil(validation_fraction x n) rows and test ceil(test_fraction x n), of all ``n`` rows (the
    report's 10% of 2,988 balanced pairs is 299).

    Example:

    >>> frame = pd.DataFrame({"question1": ["a"] * 100, "question2": ["b"] * 100,
    ...                       "is_duplicate": [0, 1] * 50})
    >>> [None if f is None else len(f) for f in split(frame, 0.1, seed=0, test_fraction=0.2)]
    [70, 10, 20]
    """
    from sklearn.model_selection import train_test_split

    number("val_fraction", validation_fraction, low=0, low_open=True, high=0.9)
    n = len(frame)
    n_val = int(np.ceil(validation_fraction * n))
    n_test = int(np.ceil(test_fraction * n)) if test_fraction else 0
    labels = frame[LABEL].to_numpy()
    if n - n_val - n_test < 2 or n_val < 2 or (test_fraction and n_test < 2):
        raise InputError(f"{n} rows are too few to split into training, validation"
                         f"{' and test' if test_fraction else ''}")
    rows = np.arange(n)
    stratify = labels if np.bincount(labels, minlength=2).min() >= 2 else None
    test = None
    if n_test:
        rows, test_rows = train_test_split(rows, test_size=n_test, random_state=seed,
                                           stratify=stratify)
        test = frame.iloc[test_rows].reset_index(drop=True)
        stratify = labels[rows] if stratify is not None else None
    train_rows, val_rows = train_test_split(rows, test_size=n_val, random_state=seed,
                                            stratify=stratify)
    return (frame.iloc[train_rows].reset_index(drop=True),
            frame.iloc[val_rows].reset_index(drop=True), test)


@dataclasses.dataclass
class QQPData:
    """Training, validation (which picks the best epoch) and optional test pairs, and where they
    came from: ``source`` (the training file; ``rows_read``, ``dropped_missing`` are its),
    ``validation_source`` (the dev file, or "split of <source>"), ``synthetic`` (the bundled
    sample)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None
    source: str
    validation_source: str
    rows_read: int
    dropped_missing: int
    dev_rows_read: int | None
    dev_dropped_missing: int | None
    synthetic: bool
    balance: bool
    fraction: float | None

    def summary(self) -> dict:
        """Plain values for metrics.json."""
        data = dataclasses.asdict(self)
        del data["train"], data["validation"], data["test"]
        data["train_rows"], data["validation_rows"] = len(self.train), len(self.validation)
        data["test_rows"] = None if self.test is None else len(self.test)
        data["train_duplicate_rate"] = float(self.train[LABEL].mean())
        data["validation_duplicate_rate"] = float(self.validation[LABEL].mean())
        return data


def load_qqp(path=SAMPLE_PATH, dev_path=None, *, fraction: float | None = None,
             balance: bool = False, validation_fraction: float = 0.1,
             test_fraction: float | None = None, seed: int = 0) -> QQPData:
    """Read QQP and prepare training, validation (and test) sets as the report did.

    Without ``dev_path`` (e.g. GLUE ``dev.tsv``): drop empty questions, ``balance`` (undersample
    the majority class), keep a stratified ``fraction`` (the report: 0.01), then split
    ``validation_fraction`` (the report: 0.1) and ``test_fraction`` (an untouched test set) off,
    stratified; so validation shares the balancing. With ``dev_path``: balance and fraction
    apply to the training file only; the dev file is the validation set, whole (only its empty
    questions are dropped), and ``test_fraction`` is split off the training file. ``seed``
    seeds balancing, subsampling and splitting.

    Raises:
        InputError: the training data holds a single class (nothing to learn).

    Example:

    >>> data = load_qqp(SAMPLE_PATH, balance=True, seed=1)
    >>> round(float(data.train["is_duplicate"].mean()), 1)
    0.5
    """
    table = read_qqp(path, "data")
    frame = table.frame
    if balance:
        frame = balance_classes(frame, seed)
    if fraction is not None:
        frame = subsample(frame, fraction, seed)
    if dev_path is None:
        train, validation, test = split(frame, validation_fraction, seed, test_fraction)
        validation_source, dev = f"split of {path} ({validation_fraction:.0%})", None
    else:
        dev = read_qqp(dev_path, "dev")
        if test_fraction:
            train, test, _ = split(frame, test_fraction, seed)
        else:
            train, test = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True), None
        validation, validation_source = dev.frame, str(dev_path)
    if train[LABEL].nunique() < 2:
        raise InputError(f"{path}: the training pairs hold only one class "
                         f"(is_duplicate = {int(train[LABEL].iloc[0])}); nothing to learn")
    return QQPData(
        train=train, validation=validation, test=test, source=str(path),
        validation_source=validation_source,
        rows_read=table.rows_read, dropped_missing=table.dropped_missing,
        dev_rows_read=None if dev is None else dev.rows_read,
        dev_dropped_missing=None if dev is None else dev.dropped_missing,
        synthetic=is_synthetic(path), balance=balance, fraction=fraction,
    )
