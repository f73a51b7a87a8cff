"""Precision (``--precision``): Keras dtype policies for building and training a model.

``mixed_bfloat16`` and ``mixed_float16`` keep every variable in float32 and compute in the half
type; the output layer computes in float32 (:func:`prepare`), as Keras's mixed-precision guide
advises. float16 gets Keras's ``LossScaleOptimizer`` and needs a GPU with float16 arithmetic
(:func:`check_float16`).

>>> import keras
>>> with dtype_policy("mixed_bfloat16"):
...     keras.layers.Dense(2).compute_dtype
'bfloat16'
>>> keras.config.dtype_policy().name
'float32'
"""

from __future__ import annotations

import contextlib

from project.errors import SettingError
from project.training.devices import float16_support


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras's global dtype policy is ``name`` inside the block, and what it was afterwards."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def check_float16(backend: str) -> None:
    """Refuse ``mixed_float16`` where the device has no float16 arithmetic (a CPU, a TPU, a GPU
    before compute capability 5.3): Keras would emulate it, slower than float32."""
    supported, device = float16_support(backend)
    if not supported:
        raise SettingError("{precision} mixed_float16 needs a GPU with float16 arithmetic; this "
                           f"run computes on {device}: use " + "{precision} mixed_bfloat16 or "
                           "float32")


def output_layers(model) -> list:
    """The layers of a functional model that produce its outputs."""
    outputs = {id(t) for t in getattr(model, "outputs", None) or []}
    found = []
    for layer in getattr(model, "layers", []):
        try:
            if id(layer.output) in outputs:
                found.append(layer)
        except (AttributeError, ValueError):  # a shared layer has no single output
            continue
    return found


def prepare(model, precision: str):
    """Under mixed precision, the output layer of a freshly built model computes in float32
    (logits and probabilities keep float32 resolution; the loss sees float32). Returns it."""
    if precision != "float32":
        for layer in output_layers(model):
            layer.dtype_policy = "float32"
    return model
