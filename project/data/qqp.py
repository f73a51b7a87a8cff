"""Quora Question Pairs: reading, checking, splitting, the length rule and the input pipeline.

Files: Kaggle's ``train.csv`` (comma separated, quoted; questions may hold commas, quotes and
line breaks) and GLUE's ``train.tsv`` / ``dev.tsv`` (tab separated, unquoted: a ``"`` is just a
character). Both have the columns id, qid1, qid2, question1, question2, is_duplicate; only the
last three are needed. ``.gz``, ``.bz2``, ``.xz`` and single-file ``.zip`` archives are read too.

Rows with an empty question are dropped and counted (Kaggle's file: 404,290 rows, 3 dropped,
404,287 kept). Bad input raises :class:`project.errors.InputError` with the file and, for a bad
label, the line.

The rest follows the course report: undersample the majority class (``balance``), keep a seeded
stratified ``fraction`` (the report trained on 1%), split 80/20 stratified unless a validation
file is given; choose the sequence length from token-count histograms (max question1 tokens +
max question2 tokens + 10, capped at the model's maximum); tokenise once and shuffle every epoch.

Example:

>>> data = load_qqp(SAMPLE_PATH, seed=0)
>>> data.dropped_missing, len(data.train) + len(data.validation)
(3, 2397)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from project.data.textfile import READ_ERRORS, check_text, open_text, read_error
from project.errors import InputError, name_list, shown
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


# ---------------------------------------------------------------------------------------------
# Reading one file


@dataclasses.dataclass
class QQPTable:
    """One QQP file after reading.

    Attributes:
        frame: columns question1, question2 (str), is_duplicate (int 0/1); missing rows dropped.
        path: the file.
        rows_read: data rows in the file.
        dropped_missing: rows dropped for an empty question1 or question2.
    """

    frame: pd.DataFrame
    path: str
    rows_read: int
    dropped_missing: int


def _open_text(path: Path, option: str = "--data"):
    """Open a possibly compressed text file (utf-8, universal newlines off for csv)."""
    return open_text(path, option)


def _dialect(path: Path, head: str) -> tuple[str, int]:
    """(separator, quoting): tab and no quoting for GLUE .tsv, comma and quotes otherwise.

    ``head`` is the start of the file's text (from :func:`check_text`).
    """
    header = head.split("\n", 1)[0]
    stem = path.name.lower()
    for ext in (".gz", ".bz2", ".xz", ".zip"):
        stem = stem.removesuffix(ext)
    tab = stem.endswith(".tsv") or ("\t" in header and "," not in header)
    if not tab:
        return ",", csv.QUOTE_MINIMAL
    # GLUE writes raw text; a file whose header fields are quoted was written by a csv writer.
    return "\t", csv.QUOTE_MINIMAL if header.startswith('"') else csv.QUOTE_NONE


@contextlib.contextmanager
def _csv_field_limit(limit: int):
    """Let the csv module read fields up to ``limit`` characters (its default is 131,072)."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _line_of_row(path: Path, sep: str, quoting: int, row: int) -> int | None:
    """The line (1-based, header = line 1) where data row ``row`` (0-based) starts.

    None when the csv module cannot follow the file that far (pandas could): the caller then
    names the data row instead.
    """
    try:
        with _csv_field_limit(_CSV_FIELD_LIMIT), _open_text(path) as f:
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
    return end_of_previous


def _where(path: Path, sep: str, quoting: int, row: int) -> str:
    """``"<path>, line 7"`` for data row ``row``, or ``"<path>, data row 6"`` if the line is unknown."""
    line = _line_of_row(path, sep, quoting, row)
    return f"{path}, line {line}" if line is not None else f"{path}, data row {row + 1}"


def _check_question_lengths(frame: pd.DataFrame, path: Path, sep: str, quoting: int,
                            option: str) -> None:
    """Refuse a question longer than ``MAX_QUESTION_CHARS`` (before any tokenising)."""
    for column in ("question1", "question2"):
        lengths = frame[column].str.len().to_numpy()
        too_long = np.flatnonzero(lengths > MAX_QUESTION_CHARS)
        if too_long.size:
            row = int(too_long[0])
            raise InputError(
                f"{_where(path, sep, quoting, row)}: {column} has {int(lengths[row]):,} "
                f"characters, more than the limit of {MAX_QUESTION_CHARS:,} "
                f"({too_long.size} such row(s) in this column) ({option})"
            )


def read_qqp(path, option: str = "--data", labels_required: bool = True) -> QQPTable:
    """Read and check one QQP file; drop (and count) rows with an empty question.

    Args:
        path: Kaggle ``train.csv`` or GLUE ``train.tsv``/``dev.tsv`` (possibly compressed).
        option: the command-line option that named the file, for error messages.
        labels_required: False accepts a file without ``is_duplicate`` (pairs to predict, like
            GLUE's test.tsv); its frame then has no label column.

    Returns:
        A :class:`QQPTable`.

    Raises:
        InputError: missing file, binary or non-UTF-8 data, a damaged or truncated archive, a
            malformed file, missing columns, a label outside {0, 1} (with its line), a question
            longer than ``MAX_QUESTION_CHARS`` (with its line), or no row left after dropping
            empty questions. Always one line naming the file and ``option``.

    Example:

    >>> table = read_qqp(SAMPLE_PATH)
    >>> table.rows_read, table.dropped_missing
    (2400, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file ({option})")
    try:
        head = check_text(path, option)
        sep, quoting = _dialect(path, head)
        with _open_text(path, option) as f:
            frame = pd.read_csv(
                f, sep=sep, quoting=quoting, dtype=str, keep_default_na=False, engine="c"
            )
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty ({option})") from None
    except pd.errors.ParserError as err:
        raise InputError(f"{path}: cannot parse it as QQP ({str(err).strip()}) ({option})") from None
    except READ_ERRORS as err:
        raise read_error(path, err, option) from None
    wanted = [c for c in COLUMNS if labels_required or c != LABEL or c in frame.columns]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; found "
                         f"{name_list(frame.columns)} ({option})")
    frame = frame[wanted].fillna("")  # short rows come back as NaN
    labelled = LABEL in frame.columns
    labels = pd.to_numeric(frame[LABEL].str.strip(), errors="coerce") if labelled else None
    bad = ~labels.isin([0, 1]) if labelled else pd.Series(False, index=frame.index)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{_where(path, sep, quoting, row)}: is_duplicate must be 0 or 1, got "
            f"{shown(frame[LABEL].iloc[row])} ({int(bad.sum())} bad label(s) in all) ({option})"
        )
    _check_question_lengths(frame, path, sep, quoting, option)
    if labelled:
        frame[LABEL] = labels.astype(np.int64)
    empty = (frame["question1"].str.strip() == "") | (frame["question2"].str.strip() == "")
    rows_read = len(frame)
    frame = frame[~empty].reset_index(drop=True)
    if frame.empty:
        raise InputError(f"{path}: no usable row ({rows_read} rows, all with an empty question) "
                         f"({option})")
    return QQPTable(frame, str(path), rows_read, int(empty.sum()))


# ---------------------------------------------------------------------------------------------
# Balancing, subsampling, splitting


def balance_classes(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Undersample the majority class to the minority's count (seeded), in shuffled order."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(frame[LABEL].to_numpy() == c) for c in (0, 1)]
    n = min(len(g) for g in groups)
    if n == 0:
        raise InputError("cannot balance classes: the data has only one class (--balance)")
    keep = np.concatenate([rng.choice(g, n, replace=False) for g in groups])
    return frame.iloc[rng.permutation(keep)].reset_index(drop=True)


def _stratified_indices(labels: np.ndarray, fraction: float, rng) -> np.ndarray:
    """Indices of a stratified random ``fraction`` of the rows (at least one per class)."""
    chosen = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(rows))))
        chosen.append(rng.choice(rows, min(k, len(rows)), replace=False))
    return rng.permutation(np.concatenate(chosen))


def subsample(frame: pd.DataFrame, fraction: float, seed: int = 0) -> pd.DataFrame:
    """A seeded, stratified random ``fraction`` (0 < fraction <= 1) of the rows."""
    if not 0 < fraction <= 1:
        raise InputError(f"fraction must be in (0, 1], got {fraction} (--fraction)")
    if fraction == 1:
        return frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picked = _stratified_indices(frame[LABEL].to_numpy(), fraction, rng)
    return frame.iloc[picked].reset_index(drop=True)


def split(frame: pd.DataFrame, validation_fraction: float = 0.1, seed: int = 0,
          test_fraction: float | None = None):
    """Seeded stratified split into (train, validation, test).

    Sizes follow scikit-learn's ``train_test_split``: validation holds ceil(validation_fraction
    x n) rows and test ceil(test_fraction x n), both fractions of all ``n`` rows (the report's
    10% of 2,988 balanced pairs is 299), stratified by label.

    Returns:
        ``(train, validation, test)``; ``test`` is None without ``test_fraction``.

    Example:

    >>> frame = pd.DataFrame({"question1": ["a"] * 100, "question2": ["b"] * 100,
    ...                       "is_duplicate": [0, 1] * 50})
    >>> [None if f is None else len(f) for f in split(frame, 0.1, seed=0, test_fraction=0.2)]
    [70, 10, 20]
    """
    from sklearn.model_selection import train_test_split

    if not 0 < validation_fraction < 1:
        raise InputError(f"validation fraction must be in (0, 1), got {validation_fraction}")
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
    """Training, validation (and optional test) pairs, and where they came from.

    Attributes:
        train, validation, test: frames with question1, question2, is_duplicate (test may be
            None). Validation picks the best epoch; test is never used for that.
        source: the training file; validation_source: the dev file or "split of <source>".
        rows_read, dropped_missing: of the training file (and ``dev_dropped_missing``).
        synthetic: True for the bundled synthetic sample.
    """

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


def load_qqp(
    path=SAMPLE_PATH,
    dev_path=None,
    *,
    fraction: float | None = None,
    balance: bool = False,
    validation_fraction: float = 0.1,
    test_fraction: float | None = None,
    seed: int = 0,
) -> QQPData:
    """Read QQP and prepare training, validation (and test) sets as the report did.

    Without ``dev_path``: drop empty questions, balance (optional), keep ``fraction`` (optional),
    then split ``validation_fraction`` (and ``test_fraction``) off, stratified; so validation
    shares the balancing. With ``dev_path``: balance and fraction apply to the training file
    only; the dev file is the validation set, whole (only its empty questions are dropped), and
    ``test_fraction`` is split off the training file.

    Args:
        path: training file (default: the bundled synthetic sample).
        dev_path: optional validation file (e.g. GLUE ``dev.tsv``).
        fraction: keep this stratified share (the report: 0.01).
        balance: undersample the majority class.
        validation_fraction: share split off for validation when there is no dev file (the
            report: 0.1).
        test_fraction: share split off as an untouched test set (None: no test set).
        seed: seed for balancing, subsampling and splitting.

    Returns:
        A :class:`QQPData`.

    Raises:
        InputError: the training data holds a single class (nothing to learn).

    Example:

    >>> data = load_qqp(SAMPLE_PATH, balance=True, seed=1)
    >>> round(float(data.train["is_duplicate"].mean()), 1)
    0.5
    """
    table = read_qqp(path, "--data")
    frame = table.frame
    if balance:
        frame = balance_classes(frame, seed)
    if fraction is not None:
        frame = subsample(frame, fraction, seed)
    if dev_path is None:
        train, validation, test = split(frame, validation_fraction, seed, test_fraction)
        validation_source, dev = f"split of {path} ({validation_fraction:.0%})", None
    else:
        dev = read_qqp(dev_path, "--dev")
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


def is_synthetic(path) -> bool:
    """True for the bundled synthetic sample."""
    try:
        return Path(path).resolve() == SAMPLE_PATH.resolve()
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Sequence length: the report's rule


@dataclasses.dataclass
class LengthChoice:
    """Token counts per question and the chosen padded pair length.

    Attributes:
        question1_tokens, question2_tokens: tokens per question (no special tokens).
        rule_length: max(question1) + max(question2) + 10, before capping.
        max_length: the model's maximum.
        sequence_length: the length used (explicit, or the rule capped at ``max_length``).
        explicit: whether ``sequence_length`` was given rather than computed.
    """

    question1_tokens: np.ndarray
    question2_tokens: np.ndarray
    rule_length: int
    max_length: int
    sequence_length: int
    explicit: bool

    def summary(self) -> dict:
        def stats(counts):
            return {"max": int(counts.max()), "mean": float(counts.mean()),
                    "p99": float(np.percentile(counts, 99))}

        return {
            "question1_tokens": stats(self.question1_tokens),
            "question2_tokens": stats(self.question2_tokens),
            "rule_length": self.rule_length, "max_length": self.max_length,
            "sequence_length": self.sequence_length, "explicit": self.explicit,
        }


def token_counts(tokenizer, texts, batch_size: int = 4096) -> np.ndarray:
    """Number of tokens of each text (without special tokens)."""
    texts = list(texts)
    counts = []
    for start in range(0, len(texts), batch_size):
        counts.extend(len(ids) for ids in _as_lists(tokenizer(texts[start:start + batch_size])))
    return np.asarray(counts, dtype=np.int64)


def _as_lists(ids):
    """Tokenizer output as Python lists (keras-hub returns lists, or a ragged tensor on TF)."""
    if hasattr(ids, "to_list"):
        return ids.to_list()
    return ids


def choose_sequence_length(
    tokenizer, frames, max_length: int, sequence_length: int | None = None
) -> LengthChoice:
    """The report's length rule: max(q1 tokens) + max(q2 tokens) + 10, capped at ``max_length``.

    Args:
        tokenizer: a keras-hub RobertaTokenizer.
        frames: one frame or a list of frames with question1 and question2 (e.g. train and
            validation).
        max_length: the backbone's ``max_sequence_length``.
        sequence_length: an explicit length, which overrides the rule.

    Returns:
        A :class:`LengthChoice`.

    Raises:
        InputError: ``sequence_length`` below 4 or above ``max_length``.

    Example:

    >>> from project.models.roberta import build_tokenizer, tiny_config
    >>> tokenizer = build_tokenizer(tiny_config()["vocabulary"], tiny_config()["merges"])
    >>> frame = pd.DataFrame({"question1": ["How do I learn Python?", "What is LoRA?"],
    ...                       "question2": ["How can I learn Python fast?", "What does LoRA mean?"]})
    >>> choice = choose_sequence_length(tokenizer, frame, 128)
    >>> choice.question1_tokens.tolist(), choice.question2_tokens.tolist(), choice.sequence_length
    ([6, 8], [7, 9], 27)
    """
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    q1 = token_counts(tokenizer, pd.concat([f["question1"] for f in frames]))
    q2 = token_counts(tokenizer, pd.concat([f["question2"] for f in frames]))
    rule = int(q1.max() + q2.max() + 10)
    if sequence_length is not None:
        if not 4 <= int(sequence_length) <= max_length:
            raise InputError(
                f"sequence length {sequence_length} is outside [4, {max_length}], the model's "
                "maximum (--sequence-length)"
            )
        return LengthChoice(q1, q2, rule, int(max_length), int(sequence_length), True)
    return LengthChoice(q1, q2, rule, int(max_length), min(rule, int(max_length)), False)


def save_length_histogram(choice: LengthChoice, path, title: str = "Tokens per question") -> Path:
    """Histograms of question1 and question2 token counts, the chosen length marked; PNG."""
    from project.reporting.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 3.6))
    top = int(max(choice.question1_tokens.max(), choice.question2_tokens.max()))
    bins = np.arange(0, top + 2) if top <= 80 else 60
    ax.hist(choice.question1_tokens, bins=bins, alpha=0.55, label="question1")
    ax.hist(choice.question2_tokens, bins=bins, alpha=0.55, label="question2")
    ax.set_xlabel("tokens (no special tokens)")
    ax.set_ylabel("questions")
    how = f"max+max+10 = {choice.rule_length}, cap {choice.max_length}"
    how = "given" if choice.explicit else how
    ax.set_title(f"{title}; pair length {choice.sequence_length} ({how})", fontsize=9)
    ax.legend()
    save_figure(fig, path)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Tokenising once, shuffling every epoch


def tokenize_pairs(preprocessor, frame: pd.DataFrame, batch_size: int = 2048) -> dict:
    """``{"token_ids": int32 (n, L), "padding_mask": bool (n, L)}`` for all pairs of ``frame``.

    Uses keras-hub's pair format ``<s> q1 </s></s> q2 </s>`` (``preprocessor((q1, q2), y=None)``;
    without ``y=None`` keras-hub would read q2 as labels).
    """
    from keras.ops import convert_to_numpy

    q1 = frame["question1"].tolist()
    q2 = frame["question2"].tolist()
    ids, masks = [], []
    for start in range(0, len(q1), batch_size):
        x = preprocessor((q1[start:start + batch_size], q2[start:start + batch_size]), y=None)
        ids.append(convert_to_numpy(x["token_ids"]).astype(np.int32))
        masks.append(convert_to_numpy(x["padding_mask"]).astype(bool))
    return {"token_ids": np.concatenate(ids), "padding_mask": np.concatenate(masks)}


def make_dataset(features: dict, labels=None, batch_size: int = 16, shuffle: bool = False,
                 seed: int = 0):
    """A batched ``tf.data.Dataset`` of pre-tokenised pairs, reshuffled every epoch if asked.

    keras-hub's ``Task.fit`` accepts a ``tf.data`` dataset on every backend (TensorFlow, PyTorch,
    JAX) but ignores ``shuffle=True`` for arrays; this dataset shuffles itself, with ``seed``,
    differently each epoch. Use it with the classifier's preprocessor detached
    (:func:`project.models.roberta.detached_preprocessor`).
    """
    import tensorflow as tf

    elements = dict(features) if labels is None else (dict(features), np.asarray(labels))
    ds = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle:
        ds = ds.shuffle(len(features["token_ids"]), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
