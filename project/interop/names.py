"""The one table between Hugging Face's ``RobertaForSequenceClassification`` and our keras-hub
classifier: every weight's name on each side and how its layout converts (PyTorch's linear
weights are (out, in); keras-hub's attention kernels (hidden, heads, head_dim)). Encoder names
have no ``roberta.`` prefix; position and token-type embeddings: :mod:`project.interop.hf`.

Example:

>>> dims = dict(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
>>> query = next(w for w in encoder_weights(dims) if w.hf.endswith("self.query.weight"))
>>> query.hf, query.place, query.hf_shape, query.keras_shape
('encoder.layer.0.attention.self.query.weight', (0, 'query', 'kernel'), (8, 8), (8, 2, 4))
>>> projection_module(3, "value")
'encoder.layer.3.attention.self.value'
"""

from __future__ import annotations

import dataclasses

import numpy as np

from project import keras_internals
from project.models.backbone import attention

#: Our head's layers by Hugging Face's module names.
HEAD = {"classifier.dense": "pooled_dense", "classifier.out_proj": "logits"}
#: The encoder layer norms' Hugging Face names, in keras_internals.layer_norms order.
_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")
_FEEDFORWARD = ("intermediate.dense", "output.dense")


@dataclasses.dataclass(frozen=True)
class Weight:
    """One tensor: its Hugging Face name, its ``place`` in our model (``(layer index or None,
    part, attribute)``), its shape on each side, and whether it is a linear weight (transposed)."""

    hf: str
    place: tuple
    hf_shape: tuple
    keras_shape: tuple
    transpose: bool = False

    def to_keras(self, value) -> np.ndarray:
        value = np.asarray(value)
        return (value.T if self.transpose else value).reshape(self.keras_shape)

    def to_hf(self, value) -> np.ndarray:
        value = np.asarray(value)
        if self.transpose:
            return np.ascontiguousarray(value.reshape(self.hf_shape[::-1]).T)
        return value.reshape(self.hf_shape)


def projection_module(index: int, target: str) -> str:
    """Hugging Face's (and PEFT's) module name of an attention projection (query/key/value)."""
    return f"encoder.layer.{index}.attention.self.{target}"


def encoder_weights(dims: dict) -> list[Weight]:
    """Every encoder weight but the position and token-type embeddings, for keras-hub's
    dimensions ``dims``."""
    h, heads, inner = dims["hidden_dim"], dims["num_heads"], dims["intermediate_dim"]
    found = [
        Weight("embeddings.word_embeddings.weight", (None, "word_embeddings", "embeddings"),
               (dims["vocabulary_size"], h), (dims["vocabulary_size"], h)),
        Weight("embeddings.LayerNorm.weight", (None, "embeddings_norm", "gamma"), (h,), (h,)),
        Weight("embeddings.LayerNorm.bias", (None, "embeddings_norm", "beta"), (h,), (h,)),
    ]
    for i in range(dims["num_layers"]):
        p = f"encoder.layer.{i}."
        for target in ("query", "key", "value"):
            name = projection_module(i, target)
            found += [Weight(f"{name}.weight", (i, target, "kernel"), (h, h),
                             (h, heads, h // heads), True),
                      Weight(f"{name}.bias", (i, target, "bias"), (h,), (heads, h // heads))]
        found += [Weight(p + "attention.output.dense.weight", (i, "attention_output", "kernel"),
                         (h, h), (heads, h // heads, h), True),
                  Weight(p + "attention.output.dense.bias", (i, "attention_output", "bias"),
                         (h,), (h,))]
        for which, norm in enumerate(_NORMS):
            found += [Weight(f"{p}{norm}.weight", (i, f"norm{which}", "gamma"), (h,), (h,)),
                      Weight(f"{p}{norm}.bias", (i, f"norm{which}", "beta"), (h,), (h,))]
        for which, (dense, shape) in enumerate(zip(_FEEDFORWARD, ((inner, h), (h, inner)))):
            found += [Weight(f"{p}{dense}.weight", (i, f"feedforward{which}", "kernel"), shape,
                             shape[::-1], True),
                      Weight(f"{p}{dense}.bias", (i, f"feedforward{which}", "bias"), shape[:1],
                             shape[:1])]
    return found


def head_weights(hidden: int, classes: int) -> list[Weight]:
    """The classification head: ``classifier.dense`` and ``classifier.out_proj``."""
    found = []
    for module, (layer, out) in zip(HEAD, (("pooled_dense", hidden), ("logits", classes))):
        found += [Weight(f"{module}.weight", (None, layer, "kernel"), (out, hidden),
                         (hidden, out), True),
                  Weight(f"{module}.bias", (None, layer, "bias"), (out,), (out,))]
    return found


def keras_layer(model, place: tuple):
    """The Keras layer of a :attr:`Weight.place` in ``model`` (a classifier, or a backbone)."""
    index, part, _ = place
    backbone = getattr(model, "backbone", model)
    if index is None:
        if part == "word_embeddings":
            return backbone.token_embedding
        if part == "embeddings_norm":
            return backbone.embeddings_layer_norm
        return model.get_layer(part)
    if part in ("query", "key", "value"):
        return getattr(attention(backbone, index), f"{part}_dense")
    if part == "attention_output":
        return attention(backbone, index).output_dense
    layer = backbone.get_layer(f"transformer_layer_{index}")
    group = (keras_internals.layer_norms if part.startswith("norm")
             else keras_internals.feedforward)(layer)
    return group[int(part[-1])]


def value(model, weight: Weight):
    """The Keras value of ``weight`` in ``model`` (for a LoRA projection: W0 + delta)."""
    return getattr(keras_layer(model, weight.place), weight.place[2])
