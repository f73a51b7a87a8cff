"""Saving and loading ``.keras`` models: atomic, portable across precisions and backends, and
safe for files we did not write.

Example:

>>> import tempfile, pathlib
>>> from project.models.convnet import build_convnet
>>> path = save_model(build_convnet(), pathlib.Path(tempfile.mkdtemp()) / "model.keras")
>>> load_model(path).count_params()
33505
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path

import keras

from project import keras_internals
from project.errors import InputError
from project.io import MAX_CONFIG_BYTES, atomic_path


@contextlib.contextmanager
def portable(model):
    """Inside the block the model's layers carry float32 policies (int8: ``int8_from_float32``)
    and unsynchronised batch normalisation, so a ``.keras`` file written there loads and
    evaluates in float32 on any backend. Everything is put back afterwards."""
    changed = []
    for layer in keras_internals.all_layers(model):
        policy = layer.dtype_policy
        if policy.compute_dtype != policy.variable_dtype and policy.variable_dtype == "float32":
            changed.append((layer, "dtype_policy", policy))
            mode = policy.quantization_mode  # int8_from_mixed_bfloat16 -> int8_from_float32
            layer.dtype_policy = f"{mode}_from_float32" if mode else "float32"
        if isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized:
            changed.append((layer, "synchronized", True))
            layer.synchronized = False
    if changed:
        keras_internals.forget_traced_functions(model)
    try:
        yield model
    finally:
        for layer, name, value in reversed(changed):
            setattr(layer, name, value)
        if changed:
            keras_internals.forget_traced_functions(model)


def save_model(model, path: str | os.PathLike) -> Path:
    """``model.save`` to a ``.keras`` path atomically, with float32 policies (:func:`portable`);
    returns the path."""
    with portable(model), atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def load_model(path: str | os.PathLike, compile: bool = False):
    """Load a ``.keras`` file in Keras's safe mode (no code from the file runs), registering the
    project's classes when the file names them. InputError unless it is a zip holding
    ``config.json``, it and ``metadata.json`` at most ``MAX_CONFIG_BYTES`` uncompressed (Keras
    reads them whole), every member passing its CRC check."""
    path, config = Path(path), b""
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a Keras model (expected a .keras archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ValueError("no config.json inside")
            for name in ("config.json", "metadata.json"):
                size = archive.getinfo(name).file_size if name in names else 0
                if size > MAX_CONFIG_BYTES:
                    raise InputError(f"{path}: its {name} is {size / 2**20:,.0f} MiB, more than "
                                     f"the {MAX_CONFIG_BYTES // 2**20} MiB a model configuration "
                                     "may take; not loading it")
            bad = archive.testzip()
            config = archive.read("config.json")
            ours = b'"module": "project' in config
        if bad is not None:
            raise ValueError(f"damaged entry {bad}")
        if ours:  # our classes, registered on import (keras-hub is slow to import: only then)
            from project.models import backbone  # noqa: F401
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except (InputError, ImportError):
        raise
    except Exception as err:  # Keras raises many types for a damaged file
        lines = [line for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        # Keras's "A total of N objects could not be loaded. Example error message for <x>:"
        # puts the reason on the next line
        reason = (lines[1] if lines[0].endswith(":") and len(lines) > 1 else lines[0])[:300]
        what = ("int8 weights or scales missing or mis-shaped, cannot load"
                if b'"QuantizedDTypePolicy"' in config else "cannot load as a Keras model")
        raise InputError(f"{path}: {what} ({reason})") from None
