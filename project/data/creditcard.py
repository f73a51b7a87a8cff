"""The Kaggle/ULB ``creditcard.csv`` (``Time``, ``V1``..``V28``, ``Amount``, ``Class``, 1 = fraud):
load, validate, split 60/20/20 and scale as the report did (``Time`` dropped; the scaler fitted
on the training split only).

Example:

>>> from project.data.creditcard import load_creditcard, split_and_scale, BUNDLED_SAMPLE
>>> df = load_creditcard(BUNDLED_SAMPLE)
>>> split = split_and_scale(df)
>>> split.x_train.shape[1]
29
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from project.data.textfile import READ_ERRORS, check_text, open_text, read_error
from project.errors import InputError, file_error, name_list, shown
from project.paths import asset
from project.settings import FRAUD_SPLIT_SEED

BUNDLED_SAMPLE = asset("creditcard_sample.csv.gz")
FEATURES = [f"V{i}" for i in range(1, 29)] + ["Amount"]
COLUMNS = ["Time", *FEATURES, "Class"]
CLASS_NAMES = ("normal", "fraud")  # Class 0 and 1
SPLIT_SEED = FRAUD_SPLIT_SEED  # the report's random_state
FLOAT32_MAX = float(np.finfo(np.float32).max)  # features are cast to float32 for the model


def is_bundled_sample(path) -> bool:
    """True when ``path`` is the bundled synthetic sample (reports then say so)."""
    return Path(path).resolve() == BUNDLED_SAMPLE.resolve()


def _line(row_position: int) -> int:
    """File line number of a data row (line 1 is the header)."""
    return int(row_position) + 2


def load_creditcard(path, setting: str = "data") -> pd.DataFrame:
    """Read and validate a ``creditcard.csv`` (plain or compressed), which ``setting`` named: the
    frame with the 31 columns, ``Class`` as int. Anything wrong (an unreadable file, columns, a
    non-numeric, non-finite or beyond-float32 cell, a label outside {0, 1}, no fraud) is one
    InputError naming the file, and the first bad line and column."""
    path = Path(path)
    if not path.is_file():
        raise file_error(setting, f"{path}: no such file (the Kaggle creditcard.csv)")
    try:
        check_text(path, setting)
        with open_text(path, setting) as f:
            df = pd.read_csv(f, low_memory=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as err:
        reason = str(err).strip().splitlines()[-1]
        raise InputError(f"{path}: not a readable CSV ({reason})") from None
    except READ_ERRORS as err:
        raise read_error(path, err, setting) from None

    missing = [c for c in COLUMNS if c not in df.columns]
    extra = [str(c) for c in df.columns if c not in COLUMNS]
    if missing or extra:
        parts = [f"{what} columns {name_list(names)}"
                 for what, names in (("missing", missing), ("unknown", extra)) if names]
        raise InputError(f"{path}: {'; '.join(parts)} (expected Time, V1..V28, Amount, Class)")
    if df.empty:
        raise InputError(f"{path}: the file has a header but no rows")

    for col in COLUMNS:
        if not pd.api.types.is_numeric_dtype(df[col]):
            numeric = pd.to_numeric(df[col], errors="coerce")
            bad = np.flatnonzero(numeric.isna() & df[col].notna())
            if bad.size:
                raise InputError(f"{path}: line {_line(bad[0])}: column {col} has a non-numeric "
                                 f"value {shown(df[col].iloc[bad[0]])}")
            df[col] = numeric
    values = df[COLUMNS].to_numpy(dtype=np.float64)
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad_rows.size:
        row = bad_rows[0]
        col = COLUMNS[int(np.flatnonzero(~np.isfinite(values[row]))[0])]
        raise InputError(f"{path}: line {_line(row)}: column {col} is empty, NaN or infinite")
    _check_float32_range(values, path)

    labels = df["Class"].to_numpy(dtype=np.float64)
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise InputError(f"{path}: line {_line(bad[0])}: Class is {labels[bad[0]]:g}; labels "
                         "must be 0 or 1")
    df["Class"] = labels.astype(np.int64)
    if not df["Class"].any():
        raise InputError(f"{path}: no fraud (Class = 1) in {len(df)} rows; nothing to detect")
    return df[COLUMNS]


def _check_float32_range(values: np.ndarray, path: Path) -> None:
    """Refuse a finite float64 value that float32 (the dtype we compute in) makes infinite."""
    with np.errstate(over="ignore"):
        too_big = np.isinf(values.astype(np.float32))
    if too_big.any():
        row, column = (int(i[0]) for i in np.nonzero(too_big))
        raise InputError(f"{path}: line {_line(row)}: column {COLUMNS[column]} is "
                         f"{values[row, column]:g}, beyond float32 (largest {FLOAT32_MAX:.4g}), "
                         "the precision the model computes in")


@dataclasses.dataclass
class FraudSplit:
    """Scaled train/validation/test arrays; ``*_rows`` hold each row's position in the loaded
    frame, or -1 for a synthetic row made by ADASYN."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_rows: np.ndarray
    scaler: StandardScaler

    def counts(self) -> dict:
        """Rows and frauds per split, for the report."""
        splits = {"train": self.y_train, "val": self.y_val, "test": self.y_test}
        return {name: {"rows": int(y.size), "fraud": int(y.sum())} for name, y in splits.items()}


def features_and_labels(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The 29 features (Time dropped, as in the report) as float32, and the labels as int."""
    return df[FEATURES].to_numpy(np.float32), df["Class"].to_numpy(np.int64)


def split_and_scale(df: pd.DataFrame | None = None, *, x: np.ndarray | None = None,
                    y: np.ndarray | None = None, row_ids: np.ndarray | None = None,
                    stratify: bool = False, seed: int = SPLIT_SEED) -> FraudSplit:
    """Split ``df`` (or ``x``, ``y`` and ``row_ids``, -1 for synthetic rows) 60/20/20 as the report
    did (test: ``train_test_split(test_size=0.2, random_state=seed)``, then validation: 0.25 of
    the rest; ``stratify``: keep the fraud rate equal, which the report did not) and standardise
    with a scaler fitted on the training rows only."""
    if df is not None:
        x, y = features_and_labels(df)
    row_ids = np.arange(len(y)) if row_ids is None else np.asarray(row_ids)
    rest, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed,
                                  stratify=y if stratify else None)
    train, val = train_test_split(rest, test_size=0.25, random_state=seed,
                                  stratify=y[rest] if stratify else None)
    scaler = StandardScaler().fit(x[train])

    def scaled(rows):
        return scaler.transform(x[rows]).astype(np.float32)

    return FraudSplit(x_train=scaled(train), y_train=y[train], x_val=scaled(val), y_val=y[val],
                      x_test=scaled(test), y_test=y[test], train_rows=row_ids[train],
                      val_rows=row_ids[val], test_rows=row_ids[test], scaler=scaler)
