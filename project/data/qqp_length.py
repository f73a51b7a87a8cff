"""The QQP pair length (the report's rule, :func:`choose_sequence_length`) and tokenisation
(once: every epoch then feeds the same arrays in a new order).

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
    """Tokens per question (no special tokens), the rule's length before capping, the model's
    maximum, and the ``sequence_length`` used (``explicit``: given, not the rule's)."""

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
    texts, counts = list(texts), []
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(texts[start:start + batch_size])
        # keras-hub returns lists, or a ragged tensor on TensorFlow
        counts.extend(len(i) for i in (ids.to_list() if hasattr(ids, "to_list") else ids))
    return np.asarray(counts, dtype=np.int64)


def choose_sequence_length(
    tokenizer, frames, max_length: int, sequence_length: int | None = None
) -> LengthChoice:
    """The report's length rule (from token-count histograms): max(q1 tokens) + max(q2 tokens)
    + 10, capped at ``max_length`` (the backbone's), over one frame or a list of frames (e.g.
    train and validation); an explicit ``sequence_length`` overrides it.

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

    q1, q2, ids, masks = frame["question1"].tolist(), frame["question2"].tolist(), [], []
    for start in range(0, len(q1), batch_size):
        x = preprocessor((q1[start:start + batch_size], q2[start:start + batch_size]), y=None)
        ids.append(convert_to_numpy(x["token_ids"]).astype(np.int32))
        masks.append(convert_to_numpy(x["padding_mask"]).astype(bool))
    return {"token_ids": np.concatenate(ids), "padding_mask": np.concatenate(masks)}
