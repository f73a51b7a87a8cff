"""The machine a measurement comes from, which every benchmark prints (speed differs between
CPUs). Nothing heavy is imported: versions come from the installed packages' metadata.

>>> machine_line().startswith("CPU: ")
True
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform

LIBRARIES = ("numpy", "keras", "keras_hub", "tensorflow", "torch", "jax", "transformers", "peft")
_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _cpuinfo(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.split(":", 1)[0].strip().lower() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown CPU"


def library_versions(names=LIBRARIES) -> dict[str, str]:
    """``{name: version}`` of the installed ones among ``names`` (no imports)."""
    versions = {}
    for name in names:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            versions[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "?"
    return versions


def machine_line() -> str:
    """One line: CPU model, logical CPUs, vector extensions, Python and library versions."""
    flags = [f for f in _FLAGS if f in (_cpuinfo("flags") or "").split()]  # matmul-relevant
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    return (f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs"
            + (f" ({', '.join(flags)})" if flags else "")
            + f"; Python {platform.python_version()}; {versions}")
