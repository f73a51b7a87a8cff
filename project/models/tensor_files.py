"""Reading and writing safetensors files (never pickle) with one-line errors, for LoRA adapters
and Hugging Face checkpoints; float16 and bfloat16 are read as float32.

Example:

>>> import numpy as np, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "a.safetensors"
>>> _ = write_safetensors(path, {"w": np.ones((2, 3), "float32")}, {"note": "hi"})
>>> tensors, metadata = read_safetensors(path)
>>> tensors["w"].shape, metadata["note"]
((2, 3), 'hi')
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from project.errors import InputError
from project.io import atomic_path


def _reason(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]


class SafetensorsReader:
    """One safetensors file, checked when opened (InputError: missing, truncated or not
    safetensors) and read one tensor at a time; ``metadata`` (a dict) and ``names`` (sorted)."""

    def __init__(self, path, what: str = "weights"):
        from safetensors import safe_open
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such {what} file")
        try:
            self._file = safe_open(str(self.path), framework="numpy")
            self._file.__enter__()
            self.metadata = dict(self._file.metadata() or {})
            self.names = sorted(self._file.keys())
            self._slices = {name: self._file.get_slice(name) for name in self.names}
        except Exception as err:  # SafetensorError, OSError, ...
            raise InputError(f"{self.path}: not a readable safetensors file ({_reason(err)})"
                             ) from None
        self._header = None

    def dtype(self, name: str) -> str:
        """The stored dtype: ``"F32"``, ``"BF16"``, ..."""
        return self._slices[name].get_dtype()

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self._slices[name].get_shape())

    def get(self, name: str) -> np.ndarray:
        """The tensor as a NumPy array; float16 and bfloat16 become float32."""
        dtype = self.dtype(name)
        try:
            if dtype == "BF16":
                return self._bfloat16(name)
            value = self._file.get_tensor(name)
        except Exception as err:
            raise InputError(f"{self.path}: cannot read tensor {name} ({_reason(err)})") from None
        return value.astype(np.float32) if dtype == "F16" else value

    def _bfloat16(self, name: str) -> np.ndarray:
        """NumPy has no bfloat16: read the raw 16-bit words and widen them to float32."""
        if self._header is None:
            with open(self.path, "rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                self._header = (8 + size, json.loads(f.read(size)))
        start, header = self._header
        begin, end = header[name]["data_offsets"]
        with open(self.path, "rb") as f:
            f.seek(start + begin)
            words = np.frombuffer(f.read(end - begin), dtype="<u2")
        return (words.astype(np.uint32) << 16).view(np.float32).reshape(self.shape(name))

    def close(self) -> None:
        self._file.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_safetensors(path, what: str = "weights", float32_only: bool = False) -> tuple[dict, dict]:
    """``(tensors, metadata)`` of a safetensors file (``what`` it is, for messages); InputError
    as :class:`SafetensorsReader`, or with ``float32_only`` for a tensor in another dtype."""
    with SafetensorsReader(path, what) as reader:
        if float32_only:
            for name in reader.names:
                if reader.dtype(name) != "F32":
                    raise InputError(f"{reader.path}: {name} is stored as {reader.dtype(name)}, "
                                     "expected F32")
        tensors = {name: reader.get(name) for name in reader.names}
    return tensors, reader.metadata


def write_safetensors(path, tensors: dict, metadata: dict | None = None) -> Path:
    """Write NumPy arrays (made C-contiguous) atomically; returns ``Path(path)``."""
    from safetensors.numpy import save_file
    arrays = {name: np.ascontiguousarray(value) for name, value in tensors.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(arrays, os.fspath(tmp), metadata=metadata)
    return path
