"""LoRA adapter files: only what LoRA trained, tied to the exact base it was trained on.

An adapter is one ``adapter.safetensors`` holding A, B and the head (per-head style: also the
q/k/v biases), float32, under stable names (``layer_3.query.lora_a``), with the LoRA settings, a
SHA-256 of the frozen base weights (:func:`base_fingerprint`) and the base's quantisation in its
metadata. Loading checks everything before it changes anything, so adapters can be switched on
one base. PEFT's format: :mod:`project.interop.peft`, which reuses the checks here.

Example:

>>> import tempfile, numpy as np, keras
>>> from project.models.lora import enable_lora, lora_layers
>>> from project.models.roberta import build_classifier
>>> model = enable_lora(build_classifier(), rank=8, alpha=16)
>>> path = save_adapter(model, tempfile.mkdtemp())
>>> path.name
'adapter.safetensors'
>>> query = lora_layers(model)["layer_0.query"]
>>> _ = query.lora_b.assign(np.ones(query.lora_b.shape, "float32"))  # e.g. another task's
>>> _ = load_adapter(model, path)                                 # switched back
>>> float(np.abs(keras.ops.convert_to_numpy(query.lora_b)).max())
0.0
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
from keras import ops

from project import keras_internals, settings
from project.errors import InputError
from project.models.backbone import lora_projections, projections
from project.models.lora import (
    enable_lora,
    is_merged,
    lora_config,
    per_head_projections,
    remove_lora_layers,
)
from project.models.quantize import quantization_mode
from project.models.tensor_files import SafetensorsReader, read_safetensors, write_safetensors

ADAPTER_FILE = "adapter.safetensors"
ADAPTER_FORMAT = "project.lora-adapter/1"
HEAD_LAYERS = ("pooled_dense", "logits")


def head_variables(model) -> dict:
    """``{"head.{pooled_dense|logits}.{kernel|bias}": variable}``: the classification head."""
    return {f"head.{name}.{kind}": getattr(model.get_layer(name), kind)
            for name in HEAD_LAYERS for kind in ("kernel", "bias")}


def adapter_variables(model) -> dict:
    """``{stable name: variable}`` of what LoRA trains in ``model`` (its current LoRA)."""
    config = lora_config(model)
    found = {}
    for i, target, layer in lora_projections(model.backbone):
        found[f"layer_{i}.{target}.lora_a"] = layer.lora_a
        found[f"layer_{i}.{target}.lora_b"] = layer.lora_b
    if config and config["style"] == "per-head":
        for i, target, layer in per_head_projections(model.backbone):
            found[f"layer_{i}.{target}.lora_kernel_a"] = layer.lora_kernel_a
            found[f"layer_{i}.{target}.lora_kernel_b"] = layer.lora_kernel_b
            found[f"layer_{i}.{target}.bias"] = layer.bias
    found.update(head_variables(model))
    return found


def adapter_shapes(model, lora: dict) -> dict:
    """``{stable name: shape}`` an adapter with the LoRA settings ``lora`` holds for ``model``."""
    shapes = {}
    r = lora["rank"]
    for i, target, _, layer in projections(model.backbone, lora["targets"]):
        kernel = tuple(int(d) for d in keras_internals.stored_kernel(layer).shape)
        if lora["style"] == "matrix":
            shapes[f"layer_{i}.{target}.lora_a"] = (kernel[0], r)
            shapes[f"layer_{i}.{target}.lora_b"] = (r, math.prod(kernel[1:]))
        else:
            shapes[f"layer_{i}.{target}.lora_kernel_a"] = kernel[:-1] + (r,)
            shapes[f"layer_{i}.{target}.lora_kernel_b"] = (r, kernel[-1])
            shapes[f"layer_{i}.{target}.bias"] = tuple(int(d) for d in layer.bias.shape)
    for name, variable in head_variables(model).items():
        shapes[name] = tuple(int(d) for d in variable.shape)
    return shapes


def check_unmerged(model) -> None:
    """Refuse a model whose LoRA deltas sit in its kernels (they no longer hold the base)."""
    if is_merged(model):
        raise InputError("LoRA is merged into the kernels: call unmerge_lora first")


def base_fingerprint(model, style: str = "matrix", targets=()) -> str:
    """SHA-256 of the frozen base weights: every backbone weight except LoRA's A and B (and, for
    per-head style, the targets' biases, which it trains), as float32, in path order.
    InputError if the model's LoRA kernels are merged."""
    check_unmerged(model)
    backbone = model.backbone
    skip = {id(v) for _, _, layer in lora_projections(backbone)
            for v in (layer.lora_a, layer.lora_b)}
    skip |= {id(v) for _, _, layer in per_head_projections(backbone)
             for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
    if style == "per-head":
        skip |= {id(layer.bias) for *_, layer in projections(backbone, targets)}
    digest = hashlib.sha256()
    for variable in sorted(backbone.weights, key=lambda v: v.path):
        if id(variable) in skip:
            continue
        value = np.ascontiguousarray(ops.convert_to_numpy(variable), dtype="<f4")
        digest.update(f"{variable.path}:{value.shape}\n".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _adapter_file(path) -> Path:
    path = Path(path)
    return path / ADAPTER_FILE if path.is_dir() else path


def save_adapter(model, path) -> Path:
    """Write only what LoRA trained (see the module docstring) to ``path``, a ``.safetensors``
    file or a folder (``adapter.safetensors`` there); returns the file written (atomically).
    InputError: no LoRA on the model, LoRA merged, or a file name not ending .safetensors."""
    config = lora_config(model)
    if not config:
        raise InputError("the model has no LoRA enabled: nothing to save as an adapter")
    path = _adapter_file(path)
    if path.suffix != ".safetensors":
        raise InputError(f"{path}: an adapter file name must end in .safetensors")
    tensors = {name: np.asarray(ops.convert_to_numpy(v), dtype="float32")
               for name, v in adapter_variables(model).items()}
    metadata = {"format": ADAPTER_FORMAT, "lora": json.dumps(config, sort_keys=True),
                "base_sha256": base_fingerprint(model, config["style"], config["targets"]),
                "base_quantization": quantization_mode(model) or "none"}
    return write_safetensors(path, tensors, metadata)


def _settings_from_metadata(path, metadata: dict) -> dict:
    if metadata.get("format") != ADAPTER_FORMAT:
        raise InputError(f"{path}: not an adapter of this project (metadata format "
                         f"{metadata.get('format')!r}, expected {ADAPTER_FORMAT!r})")
    try:
        lora = json.loads(metadata["lora"])
        if not isinstance(lora, dict):
            raise ValueError("not a JSON object")
        lora = {k: lora[k] for k in ("style", "rank", "alpha", "dropout", "targets")}
        lora["targets"] = list(settings.lora_settings(
            lora["rank"], lora["alpha"], lora["dropout"], lora["targets"], lora["style"]))
    except (KeyError, ValueError, TypeError) as err:  # SettingError is a ValueError
        raise InputError(f"{path}: bad LoRA settings in the metadata ({err})") from None
    if "base_sha256" not in metadata:
        raise InputError(f"{path}: the metadata has no base_sha256")
    return lora


def check_tensors(path, tensors: dict, expected: dict, what: str = "adapter") -> None:
    """Raise one InputError line unless ``tensors`` has exactly the ``expected`` names and
    shapes, in float32, with finite values."""
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise InputError(f"{path}: {what} lacks {len(missing)} tensor(s), e.g. {missing[0]}")
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise InputError(f"{path}: unexpected tensor {unexpected[0]} "
                         f"({len(unexpected)} in all) for this {what}'s settings")
    for name, shape in expected.items():
        value = tensors[name]
        if tuple(value.shape) != tuple(shape):
            raise InputError(f"{path}: {name} has shape {tuple(value.shape)}, "
                             f"the model expects {tuple(shape)}")
        if value.dtype != np.float32:
            raise InputError(f"{path}: {name} is {value.dtype}, expected float32")
        if not np.isfinite(value).all():
            raise InputError(f"{path}: {name} holds NaN or infinite values")


def load_adapter(model, path):
    """Put an adapter written by :func:`save_adapter` (a file, or a folder holding one) on
    ``model``, the base it was trained on; returns ``model``, changed in place. Everything is
    checked first (file, settings, names, shapes, dtypes, finite values, base hash: one-line
    InputError); only then is LoRA enabled with the adapter's settings and the weights assigned.
    """
    path = _adapter_file(path)
    tensors, metadata = read_safetensors(path, what="adapter", float32_only=True)
    lora = _settings_from_metadata(path, metadata)
    check_tensors(path, tensors, adapter_shapes(model, lora))
    current = lora_config(model)
    if current is not None and current["style"] != lora["style"]:
        raise InputError(f"{path}: a {lora['style']} adapter cannot replace the model's "
                         f"{current['style']} LoRA; merge_lora first or use a fresh model")
    if current is not None and current["style"] == "per-head" and current != lora:
        raise InputError(f"{path}: adapter settings {lora} differ from the model's per-head "
                         f"LoRA {current}")
    trained_on, here = _quantization_of(metadata), quantization_mode(model) or "none"
    if trained_on != here:
        raise InputError(f"{path}: made for {_base_words(trained_on)}, this model has "
                         f"{_base_words(here)}; " + ("quantise the model first (--quantize "
                         f"{trained_on})" if here == "none" else "load it before quantising"))
    expected_hash = base_fingerprint(model, lora["style"], lora["targets"])
    if metadata["base_sha256"] != expected_hash:
        raise InputError(f"{path}: made for another base model (base weights SHA-256 "
                         f"{metadata['base_sha256'][:12]}..., this model's "
                         f"{expected_hash[:12]}...)")
    apply_adapter(model, lora, tensors)
    return model


def adapter_quantization(path) -> str:
    """The base the adapter ``path`` was trained on, ``"none"`` (float) or ``"int8"``."""
    with SafetensorsReader(_adapter_file(path), "adapter") as reader:
        return _quantization_of(reader.metadata)


def _quantization_of(metadata: dict) -> str:
    return metadata.get("base_quantization", "none")  # older adapters: a float base


def _base_words(mode: str) -> str:
    return "a float base" if mode == "none" else f"an {mode} base"


def apply_adapter(model, lora: dict, tensors: dict) -> None:
    """Enable LoRA with the settings ``lora`` (replacing other LoRA layers) and assign the
    checked ``tensors`` (stable names)."""
    current = lora_config(model)
    if current is not None and current != lora:
        remove_lora_layers(model)  # the base kernels are unchanged: nothing was merged
        current = None
    if current is None:
        enable_lora(model, lora["rank"], lora["alpha"], lora["dropout"], lora["targets"],
                    lora["style"])
    for name, variable in adapter_variables(model).items():
        variable.assign(tensors[name])
    keras_internals.forget_traced_functions(model)

