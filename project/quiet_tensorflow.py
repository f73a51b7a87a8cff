"""Keep TensorFlow's C++ start-up lines off stderr, so that an error is the only line a user sees.

TensorFlow 2.21 logs from C++ static initialisers during ``import tensorflow``, before
``absl::InitializeLog()``, so those lines (``WARNING: All log messages before absl::...``,
``I0000 ... cudart_stub.cc:31] Could not find cuda drivers``) reach stderr whatever
``TF_CPP_MIN_LOG_LEVEL`` says (abseil-cpp PR 1957), and keras-hub imports TensorFlow on every
backend. So :func:`install` puts a one-shot import hook in ``sys.meta_path``: while
``tensorflow``'s ``__init__`` runs, fd 2 goes to a temporary file; then every captured line is
written back except log lines below ``TF_CPP_MIN_LOG_LEVEL`` (INFO at 1, INFO and WARNING at 2
and 3) and, at 2 or more, the harmless "Unable to register cuDNN/cuFFT/cuBLAS factory" errors
(TensorFlow issue 62075). Level 0 filters nothing.

>>> import project.quiet_tensorflow as quiet
>>> quiet.is_noise("I0000 00:00:1795950060.173099    5176 cudart_stub.cc:31] Could not find", 2)
True
>>> quiet.is_noise("E0000 00:00:1795950060.173099    5176 cuda_dnn.cc:8310] Out of memory", 2)
False
"""

from __future__ import annotations

import os
import re
import sys

PRE_INIT_WARNING = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
)
#: absl's format (``I0000 00:00:1795950060.172747    5176 port.cc:153] ...``) and TensorFlow's
#: older one (``2025-09-17 14:44:05.157831: I external/.../cudart_stub.cc:32] ...``).
_LOG_LINE = re.compile(
    r"^(?:(?P<absl>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tsl>[IWEF]) )\S+:\d+\] (?P<message>.*)$"
)
_HARMLESS_ERRORS = re.compile(
    r"^Unable to register cu(?:DNN|FFT|BLAS) factory: Attempting to register factory for plugin "
    r"cu(?:DNN|FFT|BLAS) when one has already been registered$"
)
_RANK = {"I": 0, "W": 1, "E": 2, "F": 3}


def min_log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as an int (0 when unset or not a number)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def is_noise(line: str, level: int) -> bool:
    """Whether a captured stderr ``line`` is one TensorFlow would hide at log level ``level``."""
    if level < 1:
        return False
    if line == PRE_INIT_WARNING:
        return True
    match = _LOG_LINE.match(line)
    if match is None:
        return False
    rank = _RANK[match["absl"] or match["tsl"]]
    if rank < min(level, 2):
        return True
    return level >= 2 and rank == 2 and bool(_HARMLESS_ERRORS.match(match["message"]))


def filter_noise(text: bytes, level: int) -> bytes:
    """``text`` without the lines :func:`is_noise` drops (a cpu_feature_guard INFO line takes
    its continuation line with it)."""
    kept, skip_next = [], False
    for line in text.splitlines(keepends=True):
        decoded = line.decode("utf-8", "replace").rstrip("\r\n")
        if skip_next and decoded.startswith("To enable the following instructions:"):
            skip_next = False
            continue
        skip_next = False
        if is_noise(decoded, level):
            skip_next = "This TensorFlow binary is optimized" in decoded
            continue
        kept.append(line)
    return b"".join(kept)


def _run_with_stderr_filtered(function, *args) -> None:
    """Call ``function(*args)`` with fd 2 captured, then write back what is not noise."""
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        function(*args)  # no usable fd 2: nothing to filter
        return
    capture = tempfile.TemporaryFile()
    try:
        os.dup2(capture.fileno(), 2)
        function(*args)
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        rest = filter_noise(capture.read(), min_log_level())
        capture.close()
        if rest:
            os.write(2, rest)


class _QuietLoader:
    """Runs the real loader of ``tensorflow`` with stderr filtered."""

    def __init__(self, finder, loader):
        self._finder, self._loader = finder, loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._finder.uninstall()
        module.__loader__ = self._loader  # the module keeps its real loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        _run_with_stderr_filtered(self._loader.exec_module, module)


class _QuietFinder:
    """Finds ``tensorflow`` the usual way and wraps its loader in :class:`_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(self, spec.loader)
                return spec
        return None

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install() -> bool:
    """Filter stderr during the first ``import tensorflow``; False (nothing installed) when it is
    already imported, the hook is there, or ``TF_CPP_MIN_LOG_LEVEL`` is 0."""
    if "tensorflow" in sys.modules or min_log_level() < 1:
        return False
    if any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        return False
    sys.meta_path.insert(0, _QuietFinder())
    return True
