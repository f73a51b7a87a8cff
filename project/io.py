"""Outputs that are never half-written (temporary name, then rename), the clean-up of
temporaries left by killed writers, and one writer per run folder (:class:`RunLock`).

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = write_json(folder / "metrics.json", {"f1": 0.5})
>>> sorted(p.name for p in folder.iterdir())     # no temporary left behind
['metrics.json']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path

from project.errors import InputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: Largest ``config.json`` / ``metadata.json`` accepted inside a ``.keras`` file.
MAX_CONFIG_BYTES = 64 * 2**20
#: Temporaries written on another host (a shared file system) are removed after this long.
STALE_AFTER_SECONDS = 24 * 3600

_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_TEMP = re.compile(
    r"^\.(?P<base>.+)\.tmp-(?P<pid>\d+)(?:-(?P<host>[0-9a-f]{8})-(?P<start>\d+))?(?P<suffix>\..*)?$"
)


def temporary_path(path: str | os.PathLike) -> Path:
    """The temporary name :func:`atomic_path` writes ``path`` under,
    ``.<name>.tmp-<pid>-<host hash>-<process start or 0><suffixes>``, which tells
    :func:`remove_stale_temporaries` whether the writer is alive; savers see the suffixes.

    >>> temporary_path("runs/model.keras").name.startswith(".model.tmp-")
    True
    """
    path = Path(path)
    suffixes = "".join(path.suffixes)
    base = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    start = _process_start(os.getpid()) or "0"
    return path.with_name(f".{base}.tmp-{os.getpid()}-{_HOST}-{start}{suffixes}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path`` (same suffix); rename it to ``path`` on success.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_path(path) as tmp:      # e.g. model.save(tmp)
    ...     _ = tmp.write_text("done")
    ...     path.exists()                   # nothing at the real name until the block succeeds
    False
    >>> path.read_text(), [p.name for p in path.parent.iterdir()]
    ('done', ['notes.txt'])
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file where a folder should be, a read-only place, ...
        blocker = next((p for p in path.parents if p.exists()), None)
        why = (f"{blocker} is a file, not a folder" if blocker and not blocker.is_dir()
               else err.strerror or str(err))
        raise InputError(f"{path}: cannot write there ({why})") from None
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """Refuse, before any work, an output file that is a folder or under a file; return it.

    >>> check_output_file("runs/results.json", "--json")
    PosixPath('runs/results.json')
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file name")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise InputError(f"{option} {path}: cannot write there ({blocker} is a file, not a folder)")
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (NumPy scalars and arrays allowed)."""
    return write_text(path, json.dumps(data, indent=2, default=_to_builtin) + "\n")


def _to_builtin(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _process_start(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks after boot) as text; "0" where unknown; None
    when there is no such process (or only its zombie)."""
    if os.name != "posix":
        return "0"  # no safe liveness probe: os.kill(pid, 0) would signal on Windows
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return None if fields[0] in (b"Z", b"X") else fields[19].decode()
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        pass  # no /proc (macOS): ask the kernel whether the pid exists
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "0"


def is_stale_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary of :func:`atomic_path` whose writer is gone: on this host
    (or an older name without host and start), its process is not running or has another start
    time (a reused id); on another host, untouched for ``STALE_AFTER_SECONDS``."""
    path = Path(path)
    match = _TEMP.match(path.name)
    if match is None or not path.is_file():
        return False
    host = match["host"] or _HOST
    if host != _HOST:
        try:
            return time.time() - path.stat().st_mtime > STALE_AFTER_SECONDS
        except FileNotFoundError:
            return False
    running = _process_start(int(match["pid"]))
    if running is None:
        return True
    recorded = match["start"] or "0"
    return recorded != "0" and running != "0" and running != recorded


def remove_stale_temporaries(directory: str | os.PathLike, *, recursive: bool = False
                             ) -> list[Path]:
    """Remove (and return) the stale temporaries (:func:`is_stale_temporary`) in ``directory``, if
    it exists, and, ``recursive``, its sub-folders; call it after taking the :class:`RunLock`."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    candidates = directory.rglob(".*.tmp-*") if recursive else directory.glob(".*.tmp-*")
    removed = []
    for path in sorted(candidates):
        if is_stale_temporary(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


class RunLock:
    """Hold ``<directory>/.lock`` (``fcntl.flock``, non-blocking; nothing on Windows) while a run
    writes there: a second writer, even in the same process, gets an :class:`InputError`. The
    kernel releases it however the holder dies; the file holds the holder's pid while held.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder):
    ...     try:
    ...         RunLock(folder).acquire()
    ...     except InputError as err:
    ...         print(str(err).replace(folder, "DIR").split(";")[0] == f"DIR is in use by "
    ...               f"another run (pid {os.getpid()})")
    True
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.path = self.directory / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (creating the directory); InputError if another run holds it."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.directory.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return self  # no flock on this system (Windows): no lock
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise InputError(f"{self.directory} is in use by another run (pid {holder}); wait for "
                             "it, or choose another run folder") from None
        except OSError as err:  # e.g. ENOLCK on a file system without locks
            os.close(fd)
            raise InputError(f"{self.path}: cannot lock the run directory ({err.strerror})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
