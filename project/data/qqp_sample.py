"""Generator of the bundled synthetic QQP sample, its byte-level BPE tokenizer and tiny config.

The real Quora Question Pairs file cannot ship, so the demo and the tests use a synthetic one
with Kaggle's ``train.csv`` schema. Questions come from templates: a duplicate asks the same
thing about the same subject, as a near-copy or in other words; non-duplicates are sometimes
close in wording and more often unrelated. About 37% of pairs are duplicates (QQP: 36.9%), three
rows have an empty question (as in the real file), and a few questions hold commas, quotes and a
line break. Nothing here is a real Quora question. From the sample come a byte-level BPE
vocabulary (``assets/qqp_tokenizer``; special tokens get ids 0-4, as in RoBERTa) and the tiny
RoBERTa configuration (``assets/qqp_tiny_config.json``) used offline.

>>> df = make_qqp_sample(n_pairs=200, seed=0)
>>> list(df.columns)
['id', 'qid1', 'qid2', 'question1', 'question2', 'is_duplicate']
>>> write_qqp_assets("assets")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from project.data.creditcard_sample import write_gzip
from project.io import atomic_path, write_json

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

# Each intent: a subject kind and several wordings of the same question. Two wordings of one
# intent about one subject are duplicates; anything else is not.
_SUBJECTS = {
    "skill": ["Python", "Java", "JavaScript", "machine learning", "data science", "guitar",
              "piano", "Spanish", "French", "German", "Japanese", "calculus", "statistics",
              "chess", "cooking", "photography", "drawing", "SQL", "C++", "public speaking",
              "swimming", "economics"],
    "city": ["Paris", "London", "Tokyo", "New York", "Berlin", "Mumbai", "Delhi", "Bangalore",
             "Toronto", "Sydney", "Rome", "Dubai", "Singapore", "San Francisco", "Chicago",
             "Seoul"],
    "job": ["software engineer", "doctor", "data scientist", "lawyer", "pilot", "teacher",
            "civil engineer", "chartered accountant", "product manager", "nurse", "architect",
            "journalist", "investment banker", "graphic designer"],
    "thing": ["the iPhone 7", "a MacBook", "Android phones", "Bitcoin", "the stock market",
              "electric cars", "Netflix", "Facebook", "the Samsung Galaxy S7", "Windows 10"],
}

_INTENTS = {
    "learn": ("skill", [
        "How can I learn {s} quickly?",
        "What is the fastest way to learn {s}?",
        "What are the best ways to learn {s} fast?",
        "How do I get good at {s} in a short time?",
        "How should I start learning {s} if I want to be good at it soon?",
    ]),
    "book": ("skill", [
        "What is the best book to learn {s}?",
        "Which book should I read to learn {s}?",
        "Which are the best books for {s} beginners?",
        "Can you recommend a good book on {s}?",
    ]),
    "hard": ("skill", [
        "Is {s} hard to learn?",
        "How difficult is it to learn {s}?",
        "Why do people find {s} so difficult?",
    ]),
    "visit": ("city", [
        "What are the best places to visit in {s}?",
        "What should I see when I travel to {s}?",
        "Which tourist spots in {s} are worth visiting?",
        "What are the must-see places in {s}?",
    ]),
    "live": ("city", [
        "What is it like to live in {s}?",
        "How is life in {s}?",
        "Is {s} a good city to live in?",
        "What are the pros and cons of living in {s}?",
    ]),
    "become": ("job", [
        "How do I become a {s}?",
        "What does it take to become a {s}?",
        "What skills do I need to be a {s}?",
        "What is the path to becoming a {s}?",
    ]),
    "salary": ("job", [
        "What is the average salary of a {s}?",
        "How much does a {s} earn?",
        "How much money does a {s} make in a year?",
    ]),
    "buy": ("thing", [
        "Should I buy {s}?",
        "Is it worth buying {s}?",
        "Is {s} worth the money?",
        "Would you recommend buying {s}?",
    ]),
    "think": ("thing", [
        "What do you think about {s}?",
        "What is your opinion of {s}?",
        "How do people feel about {s}?",
    ]),
}

# Questions that exercise the CSV quoting: commas, double quotes, a line break.
_AWKWARD = [
    ('What does "carpe diem" mean?', 'What is the meaning of "carpe diem"?'),
    ("Which is better, Python or Java, for a beginner?",
     "For a beginner, should I learn Python or Java?"),
    ('Why do people say "it is what it is"?', 'What does the phrase "it is what it is" mean?'),
    ("How do I stop overthinking?\nIt ruins my sleep.", "How can I stop overthinking?"),
]


def _vary(question: str, rng: random.Random) -> str:
    """Small surface noise, as in real questions: lower case, a missing '?', extra words."""
    roll = rng.random()
    if roll < 0.08:
        return question.lower()
    if roll < 0.14:
        return question.rstrip("?")
    if roll < 0.18:
        return question.replace("?", "??")
    return question


def _pair(rng: random.Random, duplicate: bool) -> tuple[str, str]:
    intent = rng.choice(sorted(_INTENTS))
    kind, wordings = _INTENTS[intent]
    subject = rng.choice(_SUBJECTS[kind])
    first = rng.choice(wordings)
    roll = rng.random()
    if duplicate:  # near-copies (surface noise only) or rewordings, as in QQP
        second = first if roll < 0.3 else rng.choice([w for w in wordings if w != first])
        return first.format(s=subject), second.format(s=subject)
    if roll < 0.2:  # same wording, another subject: close in words, a different question
        other = rng.choice([s for s in _SUBJECTS[kind] if s != subject])
        return first.format(s=subject), rng.choice(wordings).format(s=other)
    if roll < 0.45:  # same subject, another question of the same kind
        others = [i for i in sorted(_INTENTS) if i != intent and _INTENTS[i][0] == kind]
        other_wordings = _INTENTS[rng.choice(others)][1]
        return first.format(s=subject), rng.choice(other_wordings).format(s=subject)
    other_intent = rng.choice([i for i in sorted(_INTENTS) if _INTENTS[i][0] != kind])
    other_kind, other_wordings = _INTENTS[other_intent]
    other = rng.choice(other_wordings).format(s=rng.choice(_SUBJECTS[other_kind]))
    return first.format(s=subject), other


def make_qqp_sample(n_pairs: int = 2400, duplicate_rate: float = 0.37, seed: int = 0
                    ) -> pd.DataFrame:
    """A synthetic frame with Kaggle's QQP ``train.csv`` schema: ``n_pairs`` rows (three with an
    empty question), ``duplicate_rate`` of them duplicates; the same seed, the same frame."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n_pairs):
        duplicate = rng.random() < duplicate_rate
        q1, q2 = _pair(rng, duplicate)
        if rng.random() < 0.5:
            q1, q2 = q2, q1
        rows.append([_vary(q1, rng), _vary(q2, rng), int(duplicate)])
    for j, (q1, q2) in enumerate(_AWKWARD):  # awkward but valid duplicates
        rows[(j + 1) * (n_pairs // (len(_AWKWARD) + 1))] = [q1, q2, 1]
    # Three rows with a missing question, like the real file (one question1, two question2).
    rows[n_pairs // 7][0] = ""
    rows[n_pairs // 3][1] = ""
    rows[n_pairs // 2][1] = ""

    qids: dict[str, int] = {}
    table = []
    for i, (q1, q2, label) in enumerate(rows):
        qid1 = qids.setdefault(q1, len(qids) + 1)
        qid2 = qids.setdefault(q2, len(qids) + 1)
        table.append([i, qid1, qid2, q1, q2, label])
    return pd.DataFrame(table, columns=["id", "qid1", "qid2", "question1", "question2",
                                        "is_duplicate"])


def write_qqp_sample(path, **kwargs) -> Path:
    """Write :func:`make_qqp_sample` as a gzipped CSV (same bytes every time), atomically."""
    return write_gzip(path, make_qqp_sample(**kwargs).to_csv(index=False).encode())


def train_tokenizer(questions, out_dir, vocab_size: int = 1500) -> Path:
    """Train a RoBERTa-style byte-level BPE of ``vocab_size`` tokens (special tokens and the 256
    bytes included) on ``questions``; write ``vocab.json`` and ``merges.txt`` atomically under
    ``out_dir``, returned as a Path."""
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        list(questions), vocab_size=vocab_size, min_frequency=2,
        special_tokens=SPECIAL_TOKENS, show_progress=False,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tokenizer.save_model(tmp_dir)
        for name in ("vocab.json", "merges.txt"):
            with atomic_path(out_dir / name) as tmp:
                shutil.copyfile(Path(tmp_dir) / name, tmp)
    return out_dir


def tiny_config(vocabulary_size: int) -> dict:
    """The tiny RoBERTa used offline: 2 layers, 2 heads, hidden 32, FFN 64, 128 positions."""
    return {"vocabulary_size": vocabulary_size, "num_layers": 2, "num_heads": 2, "hidden_dim": 32,
            "intermediate_dim": 64, "max_sequence_length": 128,
            "vocabulary": "qqp_tokenizer/vocab.json", "merges": "qqp_tokenizer/merges.txt"}


def write_qqp_assets(assets_dir="assets", seed: int = 0) -> list[Path]:
    """Write the sample, the tokenizer trained on it and the tiny config under ``assets_dir``;
    return the paths written."""
    assets_dir = Path(assets_dir)
    sample = write_qqp_sample(assets_dir / "qqp_sample.csv.gz", seed=seed)
    frame = make_qqp_sample(seed=seed)
    questions = [q for q in pd.concat([frame["question1"], frame["question2"]]) if q]
    tokenizer_dir = train_tokenizer(questions, assets_dir / "qqp_tokenizer")
    with open(tokenizer_dir / "vocab.json", encoding="utf-8") as f:
        vocabulary_size = len(json.load(f))
    config = write_json(assets_dir / "qqp_tiny_config.json", tiny_config(vocabulary_size))
    return [sample, tokenizer_dir / "vocab.json", tokenizer_dir / "merges.txt", config]
