"""Atomic file writes and checksums shared by ingest, training and reports.

Every output is written to a temporary file in the same folder, flushed and fsynced,
then renamed over the target: a reader sees either the old file or the complete new
one, never a prefix, and a killed process leaves only a `.tmp-*` file behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from jaxgram.errors import DataError

SHA256SUMS = "SHA256SUMS"  # a folder's checksum record, in `sha256sum -c` format

_CHUNK = 1 << 20
# Errors that mean the disk, or the user's quota on it, is full.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


class HashingWriter(io.RawIOBase):
    """A write-only binary stream into `file` that takes the sha256 of what passes through it.

    Not seekable, so a writer that would seek back to patch a header (zipfile) streams instead,
    and the digest is the file's: no file needs reading back to be hashed.
    """

    def __init__(self, file: IO[bytes]):
        super().__init__()
        self._file, self._digest = file, hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._digest.update(data)
        return self._file.write(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class HashingReader(io.RawIOBase):
    """A file's bytes as they are read, their sha256 taken on the way (HashingWriter's reading twin)."""

    def __init__(self, file: io.BufferedReader):
        super().__init__()
        self._file, self._digest = file, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._file.readinto(buffer)
        with memoryview(buffer) as view:
            self._digest.update(view[:count])
        return count

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


# The sha256 of each file atomic_open wrote in this process, with the file's identity at the
# rename (inode, size, mtime): write_sha256sums takes a digest from here only while the file
# is still the one written, and reads any other file back.
_written: dict[Path, tuple[tuple[int, int, int], str]] = {}


def _identity(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; rename it over `path` only on success.

    The handle hashes what is written (HashingWriter; a text handle wraps one), so the file's
    sha256 is known without reading it back: written_sha256(path) until the file changes.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = HashingWriter(raw)
            handle = hashing if mode == "wb" else io.TextIOWrapper(hashing, encoding=encoding)
            yield handle
            handle.flush()
            # mkstemp makes the file owner-only; give it the mode a plain open() would.
            os.fchmod(raw.fileno(), 0o666 & ~_UMASK)
            os.fsync(raw.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        _written[target.absolute()] = (_identity(target), hashing.hexdigest())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"could not write {target}: {os_error_reason(exc)}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def os_error_reason(exc: OSError) -> str:
    """Why `exc` happened, in words for a one-line error; a full disk (or quota) says so plainly."""
    if exc.errno in _DISK_FULL:
        return f"the disk is full ({exc.strerror})"
    return exc.strerror or str(exc)


def written_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 of `path` as atomic_open wrote it in this process, if the file is still that one; else None."""
    path = Path(path).absolute()
    record = _written.get(path)
    try:
        return record[1] if record is not None and _identity(path) == record[0] else None
    except OSError:
        return None


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry is on disk too.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sha256sums(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Record the sha256 of the files `names` in `folder` in folder/SHA256SUMS (`sha256sum -c` checks it)."""
    folder = Path(folder)
    digests = ((written_sha256(folder / name) or sha256_file(folder / name), name) for name in names)
    atomic_write_text(folder / SHA256SUMS, "".join(f"{digest}  {name}\n" for digest, name in digests))


def recorded_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 that the SHA256SUMS file beside `path` records for it; None without such a record."""
    path = Path(path)
    try:
        lines = (path.parent / SHA256SUMS).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        digest, _, name = line.partition(" ")
        # sha256sum writes `HEX  NAME` (text mode) or `HEX *NAME` (binary mode).
        if name[1:] == path.name and len(digest) == 64:
            return digest.lower()
    return None
