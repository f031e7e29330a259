"""A checkpoint's files read as untrusted input (see jaxgram.checkpoint): a plain file reached without
following a symlink, no larger than the caller's bound, and an .npz read only as np.savez writes it."""

from __future__ import annotations

import errno
import io
import math
import os
import stat
import zipfile
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
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{what} {path} is a symlink: a checkpoint's files must be plain files in its "
                            "own folder") from None
        raise DataError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    with open(fd, "rb", closefd=True) as handle:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise DataError(f"{what} {path} is not a regular file: a checkpoint's files must be plain files")
        if max_bytes is not None and status.st_size > max_bytes:
            raise DataError(f"{what} {path} is {status.st_size:,} bytes, more than the {max_bytes:,} this run's "
                            "checkpoint can take: refused unread")
        try:
            data = handle.read(status.st_size + 1)  # one byte more tells a file that grew meanwhile
        except OSError as exc:
            raise DataError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) != status.st_size:
        raise DataError(f"{what} {path} changed size while it was read")
    return data


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
    local = payload[member.header_offset:member.header_offset + _LOCAL_HEADER_BYTES]
    if len(local) != _LOCAL_HEADER_BYTES or local[:4] != b"PK\x03\x04":
        raise DataError(f"checkpoint arrays {path} hold {member.filename} without its zip header")
    name_bytes, extra_bytes = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
    start = member.header_offset + _LOCAL_HEADER_BYTES + name_bytes + extra_bytes + header_bytes
    flat = np.frombuffer(payload, dtype, count=math.prod(shape), offset=start)  # ValueError past the end
    return flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)


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
