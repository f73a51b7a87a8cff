"""Quora Question Pairs files: reading and checking. Kaggle's ``train.csv`` (comma separated,
quoted; questions may hold commas, quotes and line breaks) and GLUE's ``train.tsv`` / ``dev.tsv``
(tab separated, unquoted: a ``"`` is just a character), possibly compressed; only question1,
question2 and is_duplicate are needed. Rows with an empty question are dropped and counted
(Kaggle's file: 404,290 rows, 3 dropped).

Example:

>>> table = read_qqp(SAMPLE_PATH)
>>> table.rows_read, table.dropped_missing
(2400, 3)
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from project.data.textfile import READ_ERRORS, check_text, open_text, read_error
from project.errors import InputError, file_error, name_list, shown
from project.paths import asset

SAMPLE_PATH = asset("qqp_sample.csv.gz")
COLUMNS = ("question1", "question2", "is_duplicate")
LABEL = "is_duplicate"
CLASS_NAMES = ("not duplicate", "duplicate")
#: Longest question accepted, in characters. RoBERTa reads at most 512 tokens (a few thousand
#: characters) per pair, so a longer field is a broken file; refusing it before tokenising
#: avoids hours and gigabytes (issue 8: one 50 MB question took 315 s and 7 GB).
MAX_QUESTION_CHARS = 10_000
_CSV_FIELD_LIMIT = 2**31 - 1  # the csv module's own limit (131,072) would stop _line_of_row


@dataclasses.dataclass
class QQPTable:
    """One QQP file (``path``) after reading: ``frame`` (question1, question2 as str,
    is_duplicate as int; rows with an empty question dropped), ``rows_read`` (data rows in the
    file) and ``dropped_missing`` (rows dropped)."""

    frame: pd.DataFrame
    path: str
    rows_read: int
    dropped_missing: int


def _dialect(path: Path, head: str) -> tuple[str, int]:
    """(separator, quoting) from the name and ``head``, the start of the file's text: tab and no
    quoting for GLUE .tsv, comma and quotes otherwise."""
    header = head.split("\n", 1)[0]
    stem = path.name.lower()
    for ext in (".gz", ".bz2", ".xz", ".zip"):
        stem = stem.removesuffix(ext)
    tab = stem.endswith(".tsv") or ("\t" in header and "," not in header)
    if not tab:
        return ",", csv.QUOTE_MINIMAL
    # GLUE writes raw text; a file whose header fields are quoted was written by a csv writer.
    return "\t", csv.QUOTE_MINIMAL if header.startswith('"') else csv.QUOTE_NONE


def _line_of_row(path: Path, sep: str, quoting: int, row: int) -> int | None:
    """The line (1-based, header = line 1) where data row ``row`` (0-based) starts; None when the
    csv module cannot follow the file that far (pandas could)."""
    old_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with open_text(path) as f:
            reader = csv.reader(f, delimiter=sep, quoting=quoting)
            next(reader, None)
            end_of_previous = reader.line_num
            index = 0
            for fields in reader:
                if fields:  # pandas skips blank lines; so do we
                    if index == row:
                        return end_of_previous + 1
                    index += 1
                end_of_previous = reader.line_num
    except (csv.Error, InputError, *READ_ERRORS):
        return None
    finally:
        csv.field_size_limit(old_limit)
    return end_of_previous


def _where(path: Path, sep: str, quoting: int, row: int) -> str:
    """``"<path>, line 7"`` for data row ``row`` (``"<path>, data row 6"`` if unknown)."""
    line = _line_of_row(path, sep, quoting, row)
    return f"{path}, line {line}" if line is not None else f"{path}, data row {row + 1}"


def _check_question_lengths(frame: pd.DataFrame, path: Path, sep: str, quoting: int,
                            setting: str) -> None:
    """Refuse a question longer than ``MAX_QUESTION_CHARS`` (before any tokenising)."""
    for column in ("question1", "question2"):
        lengths = frame[column].str.len().to_numpy()
        too_long = np.flatnonzero(lengths > MAX_QUESTION_CHARS)
        if too_long.size:
            row = int(too_long[0])
            raise file_error(setting, f"{_where(path, sep, quoting, row)}: {column} has "
                             f"{int(lengths[row]):,} characters, more than the limit of "
                             f"{MAX_QUESTION_CHARS:,} ({too_long.size} such row(s) in this column)")


def read_qqp(path, setting: str = "data", labels_required: bool = True) -> QQPTable:
    """Read and check one QQP file, which ``setting`` named; drop (and count) rows with an empty
    question. ``labels_required=False`` accepts a file without ``is_duplicate`` (pairs to
    predict, like GLUE's test.tsv). Anything wrong (an unreadable or malformed file, missing
    columns, a bad label or a question over ``MAX_QUESTION_CHARS``, with its line, no row left) is
    one InputError naming the file and ``setting``."""
    path = Path(path)
    if not path.is_file():
        raise file_error(setting, f"{path}: no such file")
    try:
        head = check_text(path, setting)
        sep, quoting = _dialect(path, head)
        with open_text(path, setting) as f:
            frame = pd.read_csv(f, sep=sep, quoting=quoting, dtype=str, keep_default_na=False,
                                engine="c")
    except pd.errors.EmptyDataError:
        raise file_error(setting, f"{path}: the file is empty") from None
    except pd.errors.ParserError as err:
        raise file_error(setting, f"{path}: cannot parse it as QQP ({str(err).strip()})") from None
    except READ_ERRORS as err:
        raise read_error(path, err, setting) from None
    wanted = [c for c in COLUMNS if labels_required or c != LABEL or c in frame.columns]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise file_error(setting, f"{path}: missing column(s) {', '.join(missing)}; found "
                         f"{name_list(frame.columns)}")
    frame = frame[wanted].fillna("")  # short rows come back as NaN
    labelled = LABEL in frame.columns
    labels = pd.to_numeric(frame[LABEL].str.strip(), errors="coerce") if labelled else None
    bad = ~labels.isin([0, 1]) if labelled else pd.Series(False, index=frame.index)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise file_error(setting, f"{_where(path, sep, quoting, row)}: is_duplicate must be 0 or "
                         f"1, got {shown(frame[LABEL].iloc[row])} ({int(bad.sum())} bad label(s) "
                         "in all)")
    _check_question_lengths(frame, path, sep, quoting, setting)
    if labelled:
        frame[LABEL] = labels.astype(np.int64)
    empty = (frame["question1"].str.strip() == "") | (frame["question2"].str.strip() == "")
    rows_read = len(frame)
    frame = frame[~empty].reset_index(drop=True)
    if frame.empty:
        raise file_error(setting, f"{path}: no usable row ({rows_read} rows, all with an empty "
                                  "question)")
    return QQPTable(frame, str(path), rows_read, int(empty.sum()))


def is_synthetic(path) -> bool:
    """True for the bundled synthetic sample."""
    try:
        return Path(path).resolve() == SAMPLE_PATH.resolve()
    except OSError:
        return False
