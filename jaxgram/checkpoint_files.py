"""A checkpoint's files read as untrusted input (see jaxgram.checkpoint): a plain file reached without
following a symlink, no larger than the caller's bound, and an .npz read only as np.savez writes it."""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxgram.errors import DataError

_LOCAL_HEADER_BYTES = 30  # a zip member's local header before its name and extra field (APPNOTE 4.3.7)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_regular_file(path: Path, what: str, max_bytes: int | None) -> bytes:
    """The bytes of `path`, a regular file reached without following a symlink, of at most `max_bytes`.

    Checked on the open descriptor before reading, so a symlink, a device (/dev/zero), a pipe or a
    file larger than the bound is refused without reading a byte of it; O_NONBLOCK keeps the open
    of a pipe from waiting for a writer."""
    handle, size = _open_regular_file(path, what, max_bytes)
    with handle:
        try:
            data = handle.read(size + 1)  # one byte more tells a file that grew meanwhile
        except OSError as exc:
            raise DataError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) != size:
        raise DataError(f"{what} {path} changed size while it was read")
    return data


def _open_regular_file(path: Path, what: str, max_bytes: int | None):
    """read_regular_file's checks on the open descriptor: (the open file, its size), nothing read yet."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{what} {path} is a symlink: a checkpoint's files must be plain files in its "
                            "own folder") from None
        raise DataError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    handle = open(fd, "rb", closefd=True)
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        handle.close()
        raise DataError(f"{what} {path} is not a regular file: a checkpoint's files must be plain files")
    if max_bytes is not None and status.st_size > max_bytes:
        handle.close()
        raise DataError(f"{what} {path} is {status.st_size:,} bytes, more than the {max_bytes:,} this run's "
                        "checkpoint can take: refused unread")
    return handle, status.st_size


def npz_arrays(payload: bytes, path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file read whole into `payload`, each checked (_check_member) and then a view of
    `payload`'s bytes: the file is held in memory once, not once more as arrays (the file's sha256, checked
    by the caller, covers their bytes)."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = archive.infolist()
            if len({member.filename for member in members}) != len(members):
                raise DataError(f"checkpoint arrays {path} hold two arrays of one name")
            return {member.filename[:-len(".npy")]: _member_array(archive, member, payload, path) for member in members}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"checkpoint arrays {path} cannot be loaded: {exc}") from exc


def _member_array(archive: zipfile.ZipFile, member: zipfile.ZipInfo, payload: bytes, path: Path) -> np.ndarray:
    """A checked member as a read-only view of `payload`, found through the member's local zip header."""
    shape, fortran_order, dtype, header_bytes = _check_member(archive, member, path)
    start = _data_offset(lambda offset, size: payload[offset:offset + size], member, path) + header_bytes
    flat = np.frombuffer(payload, dtype, count=math.prod(shape), offset=start)  # ValueError past the end
    return flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)



def _data_offset(read_at, member: zipfile.ZipInfo, path: Path) -> int:
    """Where `member`'s bytes (its .npy header, then data) start, from its local zip header, read with
    read_at(offset, size)."""
    local = read_at(member.header_offset, _LOCAL_HEADER_BYTES)
    if len(local) != _LOCAL_HEADER_BYTES or local[:4] != b"PK\x03\x04":
        raise DataError(f"checkpoint arrays {path} hold {member.filename} without its zip header")
    name_bytes, extra_bytes = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
    return member.header_offset + _LOCAL_HEADER_BYTES + name_bytes + extra_bytes


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path):
    """One member as np.savez writes it: a stored .npy of plain numbers whose header claims no more
    data than the member holds; (shape, fortran_order, dtype, the .npy header's bytes). Checked before
    its data is used: a header may claim any size, a compressed member could inflate past any bound,
    and objects would need pickle."""
    if member.compress_type != zipfile.ZIP_STORED or not member.filename.endswith(".npy"):
        raise DataError(f"checkpoint arrays {path} hold {member.filename!r}, which is not an uncompressed .npy "
                        "array as jaxgram writes them")
    with archive.open(member) as stream:
        reader = _NPY_HEADER_READERS.get(np.lib.format.read_magic(stream))
        if reader is None:
            raise DataError(f"checkpoint arrays {path} hold {member.filename} in a .npy version jaxgram does not write")
        shape, fortran_order, dtype = reader(stream)
        header_bytes = stream.tell()
    if dtype.hasobject:
        raise DataError(f"checkpoint arrays {path} hold {member.filename} of Python objects, which only pickle "
                        "could load: refused")
    if math.prod(shape) * dtype.itemsize > member.file_size - header_bytes:
        raise DataError(f"checkpoint arrays {path} hold {member.filename} whose header claims shape {shape} of "
                        f"{dtype}, more than its {member.file_size:,} bytes")
    return shape, fortran_order, dtype, header_bytes


@dataclass(frozen=True)
class Member:
    """One checked array of an .npz: its shape and dtype, and where its data starts in the file."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int


class HashedFile:
    """An .npz read through one open descriptor without holding it whole: its zip structure first (members()),
    then every byte once, from start to end (skip_to, read_into), hashed on the way. sha256() reads to the
    end and gives the digest only if the structure read first is the bytes hashed and the file ended at its
    size, so a file changed between its structure and its data is refused rather than mixed."""

    _CHUNK = 1 << 22  # what skip_to hashes at a time

    def __init__(self, path: Path, what: str, max_bytes: int | None):
        self.path, self.what = path, what
        self._handle, self.size = _open_regular_file(path, what, max_bytes)
        self._fd, self._digest, self._hashed, self._cursor = self._handle.fileno(), hashlib.sha256(), 0, 0
        self._structure: list[tuple[int, bytes]] = []  # (offset, bytes) that members() read

    def __enter__(self) -> HashedFile:
        return self

    def __exit__(self, *_) -> None:
        self._handle.close()

    # The file object zipfile reads the structure through: each read is kept, to compare when hashed.
    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._cursor

    def seek(self, offset: int, whence: int = 0) -> int:
        self._cursor = (0, self._cursor, self.size)[whence] + offset
        return self._cursor

    def read(self, size: int = -1) -> bytes:
        data = os.pread(self._fd, self.size - self._cursor if size < 0 else size, self._cursor)
        self._structure.append((self._cursor, data))
        self._cursor += len(data)
        return data

    def _read_at(self, offset: int, size: int) -> bytes:
        self.seek(offset)
        return self.read(size)

    def members(self) -> dict[str, Member]:
        """The file's arrays as np.savez writes them (_check_member), by name, none of their data read."""
        try:
            with zipfile.ZipFile(self) as archive:
                listed = archive.infolist()
                if len({member.filename for member in listed}) != len(listed):
                    raise DataError(f"checkpoint arrays {self.path} hold two arrays of one name")
                return {member.filename[:-len(".npy")]: self._member(archive, member) for member in listed}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"checkpoint arrays {self.path} cannot be loaded: {exc}") from exc

    def _member(self, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Member:
        shape, fortran_order, dtype, header_bytes = _check_member(archive, member, self.path)
        start = _data_offset(self._read_at, member, self.path) + header_bytes
        if start + math.prod(shape) * dtype.itemsize > self.size:
            raise DataError(f"checkpoint arrays {self.path} hold {member.filename} past the file's end")
        return Member(shape, dtype, fortran_order, start)

    def skip_to(self, offset: int) -> None:
        """Hash the bytes up to `offset` (not before the bytes hashed already) without keeping them."""
        if offset < self._hashed:  # np.savez never writes arrays that overlap, nor out of their order
            raise DataError(f"{self.what} {self.path} hold arrays that overlap")
        chunk = bytearray(min(self._CHUNK, offset - self._hashed))
        while self._hashed < offset:
            self.read_into(memoryview(chunk)[:offset - self._hashed])

    def read_into(self, buffer) -> None:
        """Fill `buffer` (a writable buffer) with the next bytes of the file, hashed."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            try:
                got = os.preadv(self._fd, [view[filled:]], self._hashed + filled)
            except OSError as exc:
                raise DataError(f"{self.what} {self.path} cannot be read: {exc.strerror or exc}") from None
            if got == 0:
                raise DataError(f"{self.what} {self.path} changed size while it was read")
            filled += got
        self._check_structure(self._hashed, view)
        self._digest.update(view)
        self._hashed += filled

    def _check_structure(self, start: int, view: memoryview) -> None:
        for offset, data in self._structure:
            low, high = max(offset, start), min(offset + len(data), start + len(view))
            if low < high and view[low - start:high - start] != data[low - offset:high - offset]:
                raise DataError(f"{self.what} {self.path} changed while it was read")

    def sha256(self) -> str:
        """The digest of the whole file, once it is read to its end (and no further)."""
        self.skip_to(self.size)
        if os.pread(self._fd, 1, self.size):
            raise DataError(f"{self.what} {self.path} changed size while it was read")
        return self._digest.hexdigest()
