"""Opening a user's text data file (plain, ``.gz``, ``.bz2``, ``.xz`` or single-file ``.zip``)
and failing in one clear line: anything may come in (binary data, Latin-1, a truncated or
mislabelled archive), so the start is checked before a parser sees it, and every error
decompressing or decoding can raise later becomes an :class:`InputError` naming the file and
the setting.

Example:

>>> import gzip, pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "ok.csv.gz").write_bytes(gzip.compress(b"a,b\\n1,2\\n"))
>>> check_text(folder / "ok.csv.gz")
'a,b\\n1,2\\n'
>>> _ = (folder / "bad.csv").write_bytes(b"a,b\\n\\x00\\x01\\x02")
>>> check_text(folder / "bad.csv")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
project.errors.SettingError: ...bad.csv: not a text CSV file (binary data at byte 4) (data)
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
import zlib
from pathlib import Path

from project.errors import InputError, file_error

SNIFF_BYTES = 64 * 1024  # bytes checked for binary data and UTF-8 before parsing
#: What reading a (compressed) text file can raise besides InputError (gzip's and bz2's errors
#: are OSErrors, a truncated stream raises EOFError, bad deflate data zlib.error).
READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
               UnicodeDecodeError)

_FORMATS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zip": "zip"}


def compression(path) -> str | None:
    """``"gzip"``, ``"bzip2"``, ``"xz"``, ``"zip"`` from the file name's last suffix, else None."""
    return _FORMATS.get(Path(path).suffix.lower())


def open_bytes(path, setting: str = "data"):
    """Open ``path`` for reading bytes, decompressing by its suffix; InputError for a ``.zip``
    that is not a zip archive or does not hold exactly one file."""
    path = Path(path)
    kind = compression(path)
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}.get(kind)
    if opener is not None:
        return opener(path, "rb")
    if kind == "zip":
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, EOFError, OSError) as err:
            raise read_error(path, err, setting) from None
        with archive:  # the member stays readable: the file closes when both are closed
            members = [m for m in archive.namelist() if not m.endswith("/")]
            if len(members) != 1:
                raise file_error(setting, f"{path}: a .zip must hold exactly one file, found "
                                          f"{len(members)}")
            return archive.open(members[0])
    return open(path, "rb")


def open_text(path, setting: str = "data"):
    """Open ``path`` as UTF-8 text (newlines untranslated, for csv), decompressing by suffix."""
    return io.TextIOWrapper(open_bytes(path, setting), encoding="utf-8", newline="")


def check_text(path, setting: str = "data", size: int = SNIFF_BYTES) -> str:
    """The first ``size`` (decompressed) bytes, checked and decoded as UTF-8 (a character cut at
    the end left out).

    Raises:
        InputError: a NUL byte (binary data), bytes that are not UTF-8, no line break in the
            first ``size`` bytes (no CSV header is that long), or a damaged, truncated or
            mislabelled archive; one line with the file, the byte offset and ``setting`` (the
            setting that named the file).
    """
    path = Path(path)
    try:
        with open_bytes(path, setting) as raw:
            head = raw.read(size)
    except InputError:
        raise
    except READ_ERRORS as err:
        raise read_error(path, err, setting) from None
    text, bad = _decode_prefix(head, complete=len(head) < size)
    nul = head.find(b"\0")
    if nul >= 0:
        at = nul if bad is None else min(nul, bad)
        raise file_error(setting, f"{path}: not a text CSV file (binary data at byte {at})")
    if bad is not None:
        raise file_error(setting, f"{path}: not UTF-8 text (byte 0x{head[bad]:02x} at byte "
                                  f"{bad}); save it as UTF-8")
    if len(head) == size and b"\n" not in head:
        raise file_error(setting, f"{path}: no line break in the first {size // 1024} KB: not a "
                                  "CSV file with a header line")
    return text


def _decode_prefix(head: bytes, complete: bool) -> tuple[str, int | None]:
    """(text, offset of the first byte that is not UTF-8, or None); a character cut at the end
    is allowed unless ``head`` is the ``complete`` file."""
    try:
        return head.decode("utf-8"), None
    except UnicodeDecodeError as err:
        if not complete and err.reason == "unexpected end of data" and err.end == len(head):
            return head[: err.start].decode("utf-8"), None
        return head[: err.start].decode("utf-8"), err.start


def read_error(path, err: BaseException, setting: str = "data") -> InputError:
    """The one-line :class:`InputError` to raise for ``err`` (one of :data:`READ_ERRORS`) raised
    while reading ``path``, which ``setting`` named."""
    kind = compression(path)
    if isinstance(err, UnicodeDecodeError):
        bad = err.object[err.start] if err.start < len(err.object) else None
        byte = "" if bad is None else f" (byte 0x{bad:02x})"
        reason = f"not UTF-8 text{byte}; save it as UTF-8"
    elif isinstance(err, EOFError):
        reason = f"the {kind or 'compressed'} data is truncated"
    elif isinstance(err, gzip.BadGzipFile):
        reason = "not a gzip file, though its name ends in .gz"
    elif isinstance(err, zipfile.BadZipFile):
        reason = f"not a readable zip archive ({err})"
    elif isinstance(err, (zlib.error, lzma.LZMAError)) or (kind and isinstance(err, OSError)
                                                            and not err.errno):
        reason = f"damaged {kind or 'compressed'} data ({err})"
    elif isinstance(err, OSError):
        reason = f"cannot read it ({err.strerror or err})"
    else:
        reason = f"cannot read it ({type(err).__name__}: {err})"
    return file_error(setting, f"{path}: {reason}")
