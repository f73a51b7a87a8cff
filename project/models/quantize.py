"""An int8 frozen base under LoRA (and for int8 inference): Keras's own int8 quantisation of a
keras-hub RoBERTa backbone's frozen projections.

:func:`quantize_base` calls Keras's ``layer.quantize("int8")`` on the token embedding and every
transformer layer's query, key, value, attention output and feed-forward projections: int8
kernels with one float32 scale per output channel, inputs quantised per token on the fly. LoRA's
A and B, biases, layer norms, the position embedding and the head stay float32; at RoBERTa-large
dimensions the weights take 0.26x the float32 bytes (:func:`weight_bytes`). An unmerged LoRA
model on an int8 base saves and reloads in safe mode; merging LoRA into an int8 base is refused;
quantising is one-way.

Example:

>>> from project.models.lora import count_params, enable_lora
>>> from project.models.roberta import build_classifier
>>> model = enable_lora(build_classifier(), rank=8, alpha=16, seed=0)
>>> before = count_params(model)[0], weight_bytes(model)
>>> model = quantize_base(model)
>>> quantization_mode(model), count_params(model)[0] == before[0], weight_bytes(model) < before[1]
('int8', True, True)
"""

from __future__ import annotations

import gc
import math

import keras
import numpy as np

from project import keras_internals, settings
from project.errors import InputError
from project.models.backbone import attention
from project.models.lora import is_merged, lora_config


def base_projections(backbone) -> list:
    """The layers :func:`quantize_base` stores in int8: the token embedding, then per transformer
    layer query, key, value, attention output, feed-forward intermediate and output."""
    found = [backbone.embeddings.token_embedding]
    for index in range(backbone.num_layers):
        layer = attention(backbone, index)
        found += [layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense]
        found += list(keras_internals.feedforward(backbone.get_layer(f"transformer_layer_{index}")))
    return found


def quantization_mode(model) -> str | None:
    """``"int8"`` when the model's backbone is quantised (:func:`quantize_base`), else None."""
    modes = {layer.quantization_mode for layer in base_projections(model.backbone)}
    modes.discard(None)
    return modes.pop() if modes else None


def quantize_base(model, mode: str = "int8"):
    """Store every frozen projection of ``model``'s backbone (with matrix LoRA not merged, or
    no LoRA) in int8 (see the module docstring); returns ``model``, changed in place.

    Raises:
        SettingError: an unknown ``mode`` (:data:`project.settings.QUANTIZE_MODES`).
        InputError: already quantised, per-head LoRA, LoRA merged, or float16 compute.
    """
    settings.quantize_mode(mode)
    if quantization_mode(model):
        raise InputError(f"the model's base is already quantised ({quantization_mode(model)})")
    config = lora_config(model)
    if config and config["style"] != "matrix":
        raise InputError("an int8 base needs the matrix (paper's) LoRA, not per-head LoRA")
    if is_merged(model):
        raise InputError("LoRA is merged into the kernels: unmerge_lora before quantising")
    layers = base_projections(model.backbone)
    if any(layer.compute_dtype == "float16" for layer in layers):
        raise InputError("int8 does not work with float16 compute (mixed_float16): use "
                         "float32 or mixed_bfloat16")
    # Keras calls gc.collect() for every kernel it deletes: over a second each in a process
    # holding a big model and three frameworks. Objects frozen before are not looked at; the
    # garbage among them is collected once, at the end.
    gc.freeze()
    try:
        for layer in layers:
            layer.quantize(mode, type_check=False)  # keras-hub's embedding is a subclass too
    finally:
        gc.unfreeze()
    # Keras's int8 Embedding divides by its float32 scale: inside a mixed-precision model (an
    # autocast scope that embeddings opt out of) its output turns float32, and TensorFlow refuses
    # to add it to the bfloat16 position embedding. Autocast makes the scale bfloat16 there too.
    token_embedding = model.backbone.embeddings.token_embedding
    token_embedding.autocast = token_embedding.compute_dtype != token_embedding.variable_dtype
    keras_internals.refresh_torch_parameters(model)
    gc.collect()
    keras_internals.forget_traced_functions(model)
    return model


def ensure_quantized(model, mode: str):
    """:func:`quantize_base`, or nothing when the base already is in ``mode`` (a saved model)."""
    if quantization_mode(model) == settings.quantize_mode(mode):
        return model
    return quantize_base(model, mode)


def weight_bytes(model) -> int:
    """Bytes of every weight of ``model`` (int8 kernels count one byte per value)."""
    def itemsize(dtype) -> int:
        name = keras.backend.standardize_dtype(dtype)
        return 2 if name == "bfloat16" else np.dtype(name).itemsize

    return sum(math.prod(v.shape) * itemsize(v.dtype) for v in model.weights)
