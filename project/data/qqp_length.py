"""The QQP pair length (the report's rule) and tokenisation.

The report chose the padded pair length from token-count histograms: max question1 tokens + max
question2 tokens + 10, capped at the model's maximum. Pairs are tokenised once
(:func:`tokenize_pairs`); every epoch then feeds the same arrays in a new order.

Example:

>>> from project.models.roberta import build_tokenizer, tiny_config
>>> tokenizer = build_tokenizer(tiny_config()["vocabulary"], tiny_config()["merges"])
>>> frame = pd.DataFrame({"question1": ["How do I learn Python?", "What is LoRA?"],
...                       "question2": ["How can I learn Python fast?", "What does LoRA mean?"]})
>>> choice = choose_sequence_length(tokenizer, frame, 128)
>>> choice.question1_tokens.tolist(), choice.question2_tokens.tolist(), choice.sequence_length
([6, 8], [7, 9], 27)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from project import settings


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
        SettingError: ``sequence_length`` below 4 or above ``max_length``.
    """
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    q1 = token_counts(tokenizer, pd.concat([f["question1"] for f in frames]))
    q2 = token_counts(tokenizer, pd.concat([f["question2"] for f in frames]))
    rule = int(q1.max() + q2.max() + 10)
    if sequence_length is not None:
        length = settings.sequence_length(sequence_length, max_length)
        return LengthChoice(q1, q2, rule, int(max_length), length, True)
    return LengthChoice(q1, q2, rule, int(max_length), min(rule, int(max_length)), False)


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
