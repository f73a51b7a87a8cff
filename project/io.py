"""Writing outputs atomically: to a temporary name in the same folder, then renaming.

An interrupted run never leaves a half-written ``metrics.json``, report or model: the final
name either does not exist or holds a complete file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path`` (same suffix); rename it to ``path`` on success.

    Example:

    >>> with atomic_path("out/model.keras") as tmp:   # doctest: +SKIP
    ...     model.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{''.join(path.suffixes)}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (NumPy scalars and arrays allowed)."""
    return write_text(path, json.dumps(data, indent=2, default=_to_builtin) + "\n")


def save_model(model, path: str | os.PathLike) -> Path:
    """``model.save`` to a ``.keras`` path atomically; returns the path."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def _to_builtin(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def load_model(path: str | os.PathLike, compile: bool = False):
    """Load a ``.keras`` file in Keras's safe mode (no code from the file runs).

    Raises:
        InputError: the file is missing, is not a ``.keras`` archive, or is truncated/corrupt.
    """
    import zipfile

    import keras

    from project.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a Keras model (expected a .keras archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
        if bad is not None or "config.json" not in names:
            raise ValueError(f"damaged entry {bad}" if bad else "no config.json inside")
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except InputError:
        raise
    except Exception as err:  # Keras raises many types for a damaged file
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: cannot load as a Keras model ({reason})") from None
