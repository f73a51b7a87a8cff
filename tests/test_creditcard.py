import gzip
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from project.data.creditcard import (
    BUNDLED_SAMPLE,
    COLUMNS,
    FEATURES,
    features_and_labels,
    load_creditcard,
    split_and_scale,
)
from project.data.creditcard_sample import make_creditcard_sample, write_creditcard_sample
from project.errors import InputError

pytestmark = pytest.mark.backend_independent  # no Keras: make test runs it once


def test_bundled_sample_has_the_schema_and_a_realistic_imbalance():
    df = load_creditcard(BUNDLED_SAMPLE)
    assert list(df.columns) == COLUMNS
    frauds = int(df["Class"].sum())
    assert frauds >= 150
    assert 0.002 <= frauds / len(df) <= 0.005


def test_bundled_sample_is_what_the_generator_writes(tmp_path):
    again = write_creditcard_sample(tmp_path / "again.csv.gz")
    assert again.read_bytes() == BUNDLED_SAMPLE.read_bytes()  # byte for byte, gzip header too


def test_generator_is_deterministic_per_seed():
    a = make_creditcard_sample(n_rows=500, n_fraud=10, seed=3)
    b = make_creditcard_sample(n_rows=500, n_fraud=10, seed=3)
    c = make_creditcard_sample(n_rows=500, n_fraud=10, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_time_is_dropped_and_29_features_kept(small_creditcard):
    x, y = features_and_labels(load_creditcard(small_creditcard))
    assert x.shape[1] == 29 == len(FEATURES) and "Time" not in FEATURES
    assert x.dtype == np.float32 and set(np.unique(y)) == {0, 1}


def test_split_is_the_reports_60_20_20(small_creditcard):
    df = load_creditcard(small_creditcard)
    split = split_and_scale(df)
    n = len(df)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (0.6 * n, 0.2 * n, 0.2 * n)
    rows = np.concatenate([split.train_rows, split.val_rows, split.test_rows])
    assert sorted(rows) == list(range(n))
    # the report's calls, made directly
    x, y = features_and_labels(df)
    x_rest, x_test, y_rest, _ = train_test_split(x, y, test_size=0.2, random_state=50)
    _, x_val, _, _ = train_test_split(x_rest, y_rest, test_size=0.25, random_state=50)
    np.testing.assert_allclose(split.scaler.inverse_transform(split.x_test), x_test, atol=1e-3)
    np.testing.assert_allclose(split.scaler.inverse_transform(split.x_val), x_val, atol=1e-3)


def test_scaler_is_fitted_on_training_rows_only(small_creditcard):
    df = load_creditcard(small_creditcard)
    split = split_and_scale(df)
    x, _ = features_and_labels(df)
    np.testing.assert_allclose(split.scaler.mean_, x[split.train_rows].mean(0), rtol=1e-5, atol=1e-5)
    # wildly change every validation and test row: nothing fitted may move
    changed = df.copy()
    held_out = np.concatenate([split.val_rows, split.test_rows])
    changed.loc[held_out, FEATURES] = 1e6
    again = split_and_scale(changed)
    np.testing.assert_array_equal(again.scaler.mean_, split.scaler.mean_)
    np.testing.assert_array_equal(again.x_train, split.x_train)


def test_stratified_split_keeps_the_fraud_rate(small_creditcard):
    split = split_and_scale(load_creditcard(small_creditcard), stratify=True)
    rates = [y.mean() for y in (split.y_train, split.y_val, split.y_test)]
    assert max(rates) - min(rates) < 0.002


def _write(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _csv(rows):
    header = ",".join(COLUMNS)
    return "\n".join([header, *rows]) + "\n"


GOOD = ",".join(["0"] + ["0.5"] * 29 + ["0"])
FRAUD = ",".join(["1"] + ["-2.5"] * 29 + ["1"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"the file is empty"),
        (_csv([]), r"header but no rows"),
        (_csv([GOOD, FRAUD]).replace("V7,", ""), r"missing columns V7"),
        (_csv([GOOD, FRAUD]).replace("Class", "Class,Extra").replace(",0\n", ",0,1\n")
         .replace(",1\n", ",1,1\n"), r"unknown columns Extra"),
        (_csv([GOOD, GOOD.replace("0.5", "abc", 1), FRAUD]), r"line 3: column V1 has a non-numeric value 'abc'"),
        (_csv([GOOD, FRAUD, GOOD.replace("0.5", "", 1)]), r"line 4: column V1 is empty, NaN or infinite"),
        (_csv([GOOD, GOOD.replace("0.5", "inf", 1), FRAUD]), r"line 3: column V1 is empty, NaN or infinite"),
        (_csv([GOOD, FRAUD, GOOD[:-1] + "2"]), r"line 4: Class is 2; labels must be 0 or 1"),
        (_csv([GOOD, GOOD]), r"no fraud \(Class = 1\) in 2 rows"),
        (_csv([GOOD, FRAUD + ",7"]), r"not a readable CSV"),
    ],
    ids=["empty", "header-only", "missing-column", "extra-column", "non-numeric", "nan",
         "inf", "bad-label", "no-fraud", "ragged-row"],
)
def test_bad_input_is_one_clear_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=message) as info:
        load_creditcard(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_creditcard(tmp_path / "nope.csv")


def test_good_rows_load_with_integer_labels(tmp_path):
    df = load_creditcard(_write(tmp_path, _csv([GOOD, FRAUD, GOOD[:-1] + "0.0"])))
    assert df["Class"].tolist() == [0, 1, 0] and df["Class"].dtype == np.int64


# ---------------------------------------------------------------------------------------------
# Hostile input: every problem is one short line naming the file


def assert_one_short_line(message, path):
    assert "\n" not in message and len(message) <= 300, message
    assert str(path) in message, message


def _varied_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return [",".join(f"{v:.6f}" for v in rng.normal(size=30)) + f",{i % 2}" for i in range(n)]


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("creditcard.csv", lambda: np.random.default_rng(0).integers(0, 256, 4096, np.uint8)
         .tobytes(), r"not a text CSV file \(binary data at byte \d+\) \(data\)"),
        ("creditcard.csv", lambda: _csv([GOOD, FRAUD]).encode()[:-5] + "\xe9".encode("latin-1"),
         r"not UTF-8 text \(byte 0xe9 at byte \d+\)"),
        ("creditcard.csv.gz", lambda: _csv([GOOD, FRAUD]).encode(), r"not a gzip file"),
        ("creditcard.csv.gz", lambda: gzip.compress(_csv([GOOD, FRAUD]).encode())[:-12],
         r"the gzip data is truncated"),
        ("creditcard.csv.gz", lambda: gzip.compress(_csv(_varied_rows(3000)).encode())[:-2000],
         r"the gzip data is truncated"),
        ("creditcard.zip", lambda: b"PK\x03\x04" + bytes(100), r"not a readable zip archive"),
    ],
    ids=["binary", "latin-1", "not-gzip", "truncated-gzip", "truncated-gzip-late", "corrupt-zip"],
)
def test_hostile_files_are_one_clear_line(tmp_path, name, make, message):
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(InputError, match=message) as info:
        load_creditcard(path)
    assert_one_short_line(str(info.value), path)


@pytest.mark.parametrize("value", ["1e308", "-3.5e38", "1e39"])
def test_a_value_beyond_float32_is_refused_with_line_and_column(tmp_path, value):
    row = GOOD.split(",")
    row[29] = value  # Amount
    path = _write(tmp_path, _csv([GOOD, FRAUD, ",".join(row)]))
    expected = re.escape(f"line 4: column Amount is {float(value):g}, beyond float32")
    with pytest.raises(InputError, match=expected) as info:
        load_creditcard(path)
    assert_one_short_line(str(info.value), path)


def test_the_largest_float32_is_accepted(tmp_path):
    big = f"{np.finfo(np.float32).max:.8e}"
    path = _write(tmp_path, _csv([GOOD, FRAUD.replace("-2.5", big, 1)]))
    x, _ = features_and_labels(load_creditcard(path))
    assert np.isfinite(x).all() and x[1, 0] == np.finfo(np.float32).max


def test_many_unknown_columns_and_a_huge_cell_stay_one_short_line(tmp_path):
    extra = ",".join(f"Extra{i}" for i in range(40))
    text = _csv([GOOD + ",0" * 40, FRAUD + ",0" * 40]).replace("Class\n", f"Class,{extra}\n", 1)
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=r"unknown columns Extra0, Extra1, Extra2, Extra3, "
                                         r"Extra4 and 35 more") as info:
        load_creditcard(path)
    assert_one_short_line(str(info.value), path)

    path = _write(tmp_path, _csv([GOOD, GOOD.replace("0.5", "x\x0b" * 50_000, 1), FRAUD]))
    with pytest.raises(InputError, match=r"line 3: column V1 has a non-numeric value 'x") as info:
        load_creditcard(path)
    assert_one_short_line(str(info.value), path)
