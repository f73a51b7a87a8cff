"""QQP data: reading Kaggle csv and GLUE tsv, bad input, balancing/splitting, the length rule,
the pair format and the per-epoch shuffle."""

import csv
import gzip
import json

import numpy as np
import pandas as pd
import pytest

from project.data import qqp, qqp_length, qqp_splits
from project.data.qqp_sample import SPECIAL_TOKENS, make_qqp_sample
from project.errors import InputError
from project.models.roberta import ASSETS_DIR, build_preprocessor, build_tokenizer
from project.reporting.plots import plot_length_histogram

HEADER = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
VOCAB = ASSETS_DIR / "qqp_tokenizer" / "vocab.json"
MERGES = ASSETS_DIR / "qqp_tokenizer" / "merges.txt"


def write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def frame(n0, n1):
    labels = [0] * n0 + [1] * n1
    return pd.DataFrame({"question1": [f"a{i}" for i in range(len(labels))],
                         "question2": [f"b{i}" for i in range(len(labels))],
                         "is_duplicate": labels})


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(VOCAB, MERGES)


def test_kaggle_csv_quotes_newlines_and_missing_questions(tmp_path):
    rows = [
        [0, 1, 2, 'What does "carpe diem" mean?', "Meaning of carpe diem, please?", 1],
        [1, 3, 4, "Line one\nline two?", "Another, with a comma?", 0],
        [2, 5, 6, "", "Question with an empty partner?", 0],
        [3, 7, 8, "Partner is blank?", "   ", 1],
        [4, 9, 10, "Plain?", "Plain too?", 1],
    ]
    table = qqp.read_qqp(write_csv(tmp_path / "train.csv", rows))
    assert table.rows_read == 5
    assert table.dropped_missing == 2
    assert table.frame["question1"].tolist() == [rows[0][3], rows[1][3], rows[4][3]]
    assert table.frame["question2"].tolist() == [rows[0][4], rows[1][4], rows[4][4]]
    assert table.frame["is_duplicate"].tolist() == [1, 0, 1]


def test_glue_tsv_is_read_unquoted_and_compressed(tmp_path):
    lines = ["\t".join(HEADER),
             '7\t1\t2\t"Quoted" at the start?\tNo quotes here?\t1',
             "8\t3\t4\tWhy?\tWhy not?\t0"]
    path = tmp_path / "dev.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    table = qqp.read_qqp(path)
    assert table.frame["question1"].tolist() == ['"Quoted" at the start?', "Why?"]
    assert table.frame["is_duplicate"].tolist() == [1, 0]


def test_bundled_sample_is_the_generator_output():
    table = qqp.read_qqp(qqp.SAMPLE_PATH)
    generated = make_qqp_sample()
    empty = (generated["question1"] == "") | (generated["question2"] == "")
    assert table.rows_read == len(generated)
    assert table.dropped_missing == int(empty.sum()) > 0
    kept = generated[~empty].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.frame, kept[list(qqp.COLUMNS)], check_dtype=False)
    assert qqp.is_synthetic(qqp.SAMPLE_PATH)


def test_bundled_tokenizer_has_roberta_special_ids():
    vocab = json.loads(VOCAB.read_text(encoding="utf-8"))
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert 500 <= len(vocab) <= 2000


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: no such file \(dev\)"):
        qqp.read_qqp(tmp_path / "nope.csv", setting="dev")


def test_missing_columns_are_named(tmp_path):
    path = write_csv(tmp_path / "x.csv", [[0, "a?", 1]], header=["id", "question1", "label"])
    with pytest.raises(InputError, match=r"missing column\(s\) question2, is_duplicate"):
        qqp.read_qqp(path)


def test_bad_label_reports_the_file_line(tmp_path):
    rows = [[0, 1, 2, "Two\nlines?", "b?", 0],   # lines 2-3
            [1, 3, 4, "c?", "d?", 1],            # line 4
            [2, 5, 6, "e?", "f?", 2],            # line 5: bad
            [3, 7, 8, "g?", "h?", "yes"]]        # line 6: bad too
    path = write_csv(tmp_path / "bad.csv", rows)
    message = r"bad\.csv, line 5: is_duplicate must be 0 or 1, got '2' \(2 bad label"
    with pytest.raises(InputError, match=message):
        qqp.read_qqp(path)


def test_nothing_left_after_dropping_empty_questions(tmp_path):
    path = write_csv(tmp_path / "e.csv", [[0, 1, 2, "", "b?", 0], [1, 3, 4, "c?", "", 1]])
    with pytest.raises(InputError, match=r"no usable row \(2 rows, all with an empty question\)"):
        qqp.read_qqp(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InputError, match="the file is empty"):
        qqp.read_qqp(path)


def test_balance_fraction_split():
    data = frame(300, 100)
    balanced = qqp_splits.balance_classes(data, seed=3)
    assert balanced["is_duplicate"].value_counts().to_dict() == {0: 100, 1: 100}
    assert balanced.equals(qqp_splits.balance_classes(data, seed=3))
    assert not balanced.equals(qqp_splits.balance_classes(data, seed=4))

    small = qqp_splits.subsample(data, 0.1, seed=0)
    assert small["is_duplicate"].value_counts().to_dict() == {0: 30, 1: 10}

    train, validation, test = qqp_splits.split(data, 0.2, seed=0)
    assert validation["is_duplicate"].value_counts().to_dict() == {0: 60, 1: 20}
    assert len(train) == 320 and test is None
    assert set(train["question1"]).isdisjoint(validation["question1"])
    assert set(train["question1"]) | set(validation["question1"]) == set(data["question1"])


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5])
def test_bad_fraction(fraction):
    with pytest.raises(InputError, match=r"^fraction must be (> 0|<= 1), got"):
        qqp_splits.subsample(frame(5, 5), fraction)


def test_load_with_dev_file(tmp_path):
    rows = [[i, 2 * i, 2 * i + 1, f"q{i}?", f"p{i}?", i % 2] for i in range(20)]
    train_path = write_csv(tmp_path / "train.csv", rows)
    dev_path = write_csv(tmp_path / "dev.csv", rows[:6] + [[99, 0, 0, "", "x?", 1]])
    data = qqp_splits.load_qqp(train_path, dev_path, seed=0)
    assert len(data.train) == 20 and len(data.validation) == 6
    assert data.dev_dropped_missing == 1 and data.validation_source == str(dev_path)
    assert not data.synthetic


def test_length_rule_and_cap(tokenizer):
    from tokenizers import ByteLevelBPETokenizer

    reference = ByteLevelBPETokenizer(str(VOCAB), str(MERGES))
    data = frame(3, 3)
    data["question1"] = ["How do I learn Python?", "Why?", "What is it like to live in Paris?",
                         "a", "b", "c"]
    data["question2"] = ["Is chess hard?", "x", "y", "z", "Which book should I read?", "w"]
    choice = qqp_length.choose_sequence_length(tokenizer, data, max_length=128)
    q1 = [len(reference.encode(q).ids) for q in data["question1"]]
    q2 = [len(reference.encode(q).ids) for q in data["question2"]]
    assert choice.question1_tokens.tolist() == q1
    assert choice.question2_tokens.tolist() == q2
    assert choice.sequence_length == choice.rule_length == max(q1) + max(q2) + 10
    capped = qqp_length.choose_sequence_length(tokenizer, data, max_length=12)
    assert capped.sequence_length == 12 and capped.rule_length == choice.rule_length
    explicit = qqp_length.choose_sequence_length(tokenizer, data, 128, sequence_length=50)
    assert explicit.sequence_length == 50 and explicit.explicit
    with pytest.raises(InputError, match=r"^sequence_length 129 is above the model's maximum 128$"):
        qqp_length.choose_sequence_length(tokenizer, data, 128, sequence_length=129)


def test_length_histogram_png(tokenizer, tmp_path):
    choice = qqp_length.choose_sequence_length(tokenizer, frame(4, 4), max_length=128)
    plot_length_histogram(choice, tmp_path / "lengths.png")
    assert (tmp_path / "lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pair_format(tokenizer):
    from tokenizers import ByteLevelBPETokenizer

    reference = ByteLevelBPETokenizer(str(VOCAB), str(MERGES))
    pairs = pd.DataFrame({"question1": ["How can I learn Python quickly?", "Why?"],
                          "question2": ["What is the fastest way to learn Python?", "Why not?"],
                          "is_duplicate": [1, 0]})
    features = qqp_length.tokenize_pairs(build_preprocessor(tokenizer, 32), pairs)
    assert features["token_ids"].shape == features["padding_mask"].shape == (2, 32)
    for row, (a, b) in enumerate(zip(pairs["question1"], pairs["question2"], strict=True)):
        expected = [0, *reference.encode(a).ids, 2, 2, *reference.encode(b).ids, 2]
        n = len(expected)
        assert features["token_ids"][row, :n].tolist() == expected
        assert (features["token_ids"][row, n:] == 1).all()  # <pad>
        assert features["padding_mask"][row].tolist() == [True] * n + [False] * (32 - n)


# ---------------------------------------------------------------------------------------------
# Hostile input: every problem is one short line naming the file and the setting


def qqp_text(n=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [f"{i},{2 * i},{2 * i + 1},Question {rng.random():.12f}?,Another {rng.random():.12f}?,"
            f"{i % 2}" for i in range(n)]
    return ("\n".join([",".join(HEADER), *rows]) + "\n").encode()


def hostile(tmp_path, kind):
    """A file that is broken in one way (named like a QQP file)."""
    import bz2
    import lzma
    import zipfile

    text, rng = qqp_text(), np.random.default_rng(1)
    big = qqp_text(20_000)  # its first 64 KB decompress fine: the damage is met while parsing
    files = {
        "binary": ("train.csv", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        "png": ("train.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(100)),
        "latin-1": ("train.csv", text.replace(b"Question", "Qu\xe9stion".encode("latin-1"))),
        "not-gzip": ("train.csv.gz", text),
        "truncated-gzip": ("train.csv.gz", gzip.compress(text)[:-30]),
        "truncated-gzip-late": ("train.csv.gz", gzip.compress(big)[:-3000]),
        "corrupt-zip": ("train.zip", b"PK\x03\x04" + bytes(200)),
        "truncated-zip": ("train.zip", None),
        "two-file-zip": ("train.zip", None),
        "damaged-bz2": ("train.csv.bz2", None),
        "truncated-xz": ("dev.tsv.xz", lzma.compress(text)[:-40]),
    }
    name, data = files[kind]
    path = tmp_path / name
    if kind == "two-file-zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("train.csv", text)
            archive.writestr("dev.csv", text)
    elif kind == "truncated-zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("train.csv", big)
        path.write_bytes(path.read_bytes()[:-2000])
    elif kind == "damaged-bz2":
        data = bytearray(bz2.compress(text))
        data[20:40] = bytes(20)
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(data)
    return path


HOSTILE = {
    "binary": r"not a text CSV file \(binary data at byte \d+\)",
    "png": r"not a text CSV file \(binary data at byte 0\)",
    "latin-1": r"not UTF-8 text \(byte 0xe9 at byte \d+\); save it as UTF-8",
    "not-gzip": r"not a gzip file",
    "truncated-gzip": r"the gzip data is truncated",
    "truncated-gzip-late": r"the gzip data is truncated",
    "corrupt-zip": r"not a readable zip archive",
    "truncated-zip": r"not a readable zip archive",
    "two-file-zip": r"a \.zip must hold exactly one file, found 2",
    "damaged-bz2": r"damaged bzip2 data",
    "truncated-xz": r"the xz data is truncated",
}


def assert_one_short_line(message, path, setting):
    assert "\n" not in message and len(message) <= 300, message
    assert str(path) in message and f"({setting})" in message, message


@pytest.mark.parametrize("setting", ["data", "dev"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_files_are_one_clear_line(tmp_path, kind, setting):
    path = hostile(tmp_path, kind)
    with pytest.raises(InputError, match=HOSTILE[kind]) as info:
        qqp.read_qqp(path, setting=setting)
    assert_one_short_line(str(info.value), path, setting)


def test_hostile_dev_file_through_load_qqp(tmp_path):
    train = write_csv(tmp_path / "train.csv", [[i, i, i, f"q{i}?", f"p{i}?", i % 2]
                                                for i in range(10)])
    dev = hostile(tmp_path, "corrupt-zip")
    with pytest.raises(InputError, match=r"not a readable zip archive.*\(dev\)"):
        qqp_splits.load_qqp(train, dev)


def test_damage_after_the_first_64_kb_is_met_while_parsing(tmp_path):
    from project.data.textfile import SNIFF_BYTES, check_text

    path = hostile(tmp_path, "truncated-gzip-late")
    assert len(check_text(path)) == SNIFF_BYTES  # the check passes: pandas meets the damage
    with pytest.raises(InputError, match="the gzip data is truncated"):
        qqp.read_qqp(path)


def test_a_too_long_question_is_refused_with_its_line(tmp_path):
    rows = [[0, 1, 2, "Two\nlines?", "b?", 0],                           # lines 2-3
            [1, 3, 4, "c?", "x" * (qqp.MAX_QUESTION_CHARS + 1), 1],       # line 4
            [2, 5, 6, "e?", "y" * 200_000, 0]]  # beyond the csv module's default field limit
    path = write_csv(tmp_path / "long.csv", rows)
    message = (rf"long\.csv, line 4: question2 has {qqp.MAX_QUESTION_CHARS + 1:,} characters, "
               rf"more than the limit of {qqp.MAX_QUESTION_CHARS:,} \(2 such row")
    with pytest.raises(InputError, match=message) as info:
        qqp.read_qqp(path, setting="dev")
    assert_one_short_line(str(info.value), path, "dev")
    at_limit = write_csv(tmp_path / "ok.csv", [[0, 1, 2, "a" * qqp.MAX_QUESTION_CHARS, "b?", 1]])
    assert qqp.read_qqp(at_limit).frame["question1"].str.len().tolist() == [10_000]


def test_bad_label_after_a_huge_field_still_has_its_line(tmp_path):
    rows = [[0, "z" * 200_000, 2, "a?", "b?", 0],   # a 200,000-character qid1
            [1, 3, 4, "c?", "d?", 7]]
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(InputError, match=r"bad\.csv, line 3: is_duplicate must be 0 or 1"):
        qqp.read_qqp(path)


def test_many_or_strange_column_names_stay_one_short_line(tmp_path):
    header = ["id", "question1", *[f"junk{i}\x0b\x0c" for i in range(50)]]
    path = write_csv(tmp_path / "cols.csv", [[0, "a?", *range(50)]], header=header)
    with pytest.raises(InputError, match=r"missing column\(s\) question2, is_duplicate; found "
                                         r"id, question1, .* and 47 more \(data\)") as info:
        qqp.read_qqp(path)
    assert_one_short_line(str(info.value), path, "data")
    assert "\x0b" not in str(info.value) and "\x0c" not in str(info.value)


def test_a_file_without_line_breaks_is_refused_before_parsing(tmp_path):
    path = tmp_path / "one_line.csv"
    path.write_bytes(b"id,question1," + b"x" * 200_000)
    with pytest.raises(InputError, match=r"no line break in the first 64 KB") as info:
        qqp.read_qqp(path)
    assert_one_short_line(str(info.value), path, "data")


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_compressed_files_read_like_the_plain_one(tmp_path, suffix):
    import bz2
    import lzma
    import zipfile

    text = qqp_text()
    plain = tmp_path / "train.csv"
    plain.write_bytes(text)
    packed = tmp_path / f"train.csv{suffix}"
    if suffix == ".zip":
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("train.csv", text)
    else:
        packed.write_bytes({".gz": gzip, ".bz2": bz2, ".xz": lzma}[suffix].compress(text))
    pd.testing.assert_frame_equal(qqp.read_qqp(packed).frame, qqp.read_qqp(plain).frame)
