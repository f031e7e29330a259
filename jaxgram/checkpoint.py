"""End-of-epoch checkpoints: arrays in .npz (no pickle), metadata in JSON, both sha256-checked.

Layout in `folder`: `epoch-N.npz` holds the arrays; `checkpoint.json` names it with its
sha256 and is written last, so it is the commit point: a process killed at any moment
leaves either the previous checkpoint or the new one, never a mix. The manifest also
carries the sha256 of its own fields (`manifest_sha256`), so an edited value is refused too.

A checkpoint is input like any other file: whoever edits the manifest can reseal its
checksum. So the manifest may name only `epoch-N.npz` of its own `epochs_done`, a plain
file in its own folder, never followed through a symlink; each file is read only if it is a
regular file, and no further than its size (and the caller's bound, `max_bytes`) allows; an
.npz member is read only as np.savez writes it. Nothing outside `folder` is ever read or
removed because a file in it said so.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxgram.errors import DataError
from jaxgram.fileio import atomic_open, atomic_write_json, sha256_bytes

MANIFEST = "checkpoint.json"
_SELF_SHA256 = "manifest_sha256"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
# A manifest holds the config and two numbers per epoch: a few kilobytes. A file past this is
# not one, and is refused unread.
MAX_MANIFEST_BYTES = 1 << 20
# What np.savez adds around each array (zip local header, data descriptor and central directory
# entry, the .npy header: about 350 bytes) and once around the archive, with room to spare.
NPZ_BYTES_PER_ARRAY = 1024
NPZ_BYTES_PER_ARCHIVE = 4096
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass
class Checkpoint:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def arrays_name(epochs_done: int) -> str:
    """The arrays file of the checkpoint after `epochs_done` epochs: the only name a manifest may give."""
    return f"epoch-{epochs_done}.npz"


def npz_bytes_bound(arrays: Iterable[tuple[tuple[int, ...], np.dtype]]) -> int:
    """The most bytes np.savez writes for arrays of these (shape, dtype): a bound to read an arrays file against."""
    data = sum(math.prod(shape) * np.dtype(dtype).itemsize + NPZ_BYTES_PER_ARRAY for shape, dtype in arrays)
    return data + NPZ_BYTES_PER_ARCHIVE


def save(folder: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    folder = Path(folder)
    name = arrays_name(meta["epochs_done"])
    previous = _previous_arrays(folder)
    # Streamed into the file and hashed on the way: no in-memory copy of the tables (at V = 100k and
    # D = 300 each copy is a quarter of a GB), no reading back, the file still replaced atomically.
    with atomic_open(folder / name, "wb") as handle:
        np.savez(handle, **{key: np.asarray(a) for key, a in arrays.items()})
    manifest = {**meta, "arrays_file": name, "arrays_sha256": handle.hexdigest()}
    manifest.pop(_SELF_SHA256, None)
    atomic_write_json(folder / MANIFEST, {**manifest, _SELF_SHA256: _fields_sha256(manifest)})
    if previous not in (None, name):
        # A plain epoch-N.npz in this folder (a symlink there is removed, never what it points to). One
        # that cannot be removed (a folder of that name) is left: the manifest no longer names it.
        with contextlib.suppress(OSError):
            (folder / previous).unlink(missing_ok=True)


def _previous_arrays(folder: Path) -> str | None:
    """The arrays file the checkpoint in `folder` names, if it passes every check; None if there is none."""
    try:
        return _read_manifest(folder)["arrays_file"] if exists(folder) else None
    except DataError:  # a damaged or hostile old manifest is replaced, not trusted to name a file to delete
        return None


def exists(folder: str | os.PathLike) -> bool:
    """Whether anything is there under the manifest's name: what is not a plain file is refused when read,
    naming it, rather than taken for no checkpoint at all."""
    return os.path.lexists(Path(folder) / MANIFEST)


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's recorded fields (config, epochs done, ...), checked, without loading its arrays."""
    return _read_manifest(Path(folder))


def load(folder: str | os.PathLike, max_bytes: int | None = None) -> Checkpoint:
    """The checkpoint in `folder`; an arrays file over `max_bytes` (npz_bytes_bound) is refused unread."""
    meta = read_meta(folder)
    return Checkpoint(read_arrays(folder, meta, max_bytes), meta)


def read_arrays(folder: str | os.PathLike, meta: dict[str, Any], max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of the checkpoint in `folder` whose manifest is `meta` (read_meta's); an arrays file over
    `max_bytes` is refused unread."""
    folder = Path(folder)
    _check_fields(folder / MANIFEST, meta)
    path = folder / meta["arrays_file"]  # a plain name, just checked
    payload = _read_regular_file(path, "checkpoint arrays", max_bytes)
    if sha256_bytes(payload) != meta["arrays_sha256"]:
        raise DataError(f"checkpoint arrays {path} do not match the sha256 in {folder / MANIFEST}: truncated or altered")
    return _npz_arrays(payload, path)


def field_error(manifest: Path, name: str, value: Any, allowed: str) -> DataError:
    """The one-line refusal of a manifest field: the file, the field, its value (shortened), what is allowed."""
    shown = json.dumps(value)  # as the file spells it: true, null, "2"
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return DataError(f"checkpoint {manifest} has {name}={shown}, which is not allowed: {allowed}")


def is_count(value: Any) -> bool:
    """An integer >= 0 as JSON gives it (true and false are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_sha256(value: Any) -> bool:
    return isinstance(value, str) and _SHA256_HEX.match(value) is not None


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    text = _read_regular_file(path, "checkpoint", MAX_MANIFEST_BYTES)
    try:
        meta = json.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"checkpoint {path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or any(key not in meta for key in ("arrays_file", "arrays_sha256", _SELF_SHA256)):
        raise DataError(f"checkpoint {path} is missing arrays_file/arrays_sha256/{_SELF_SHA256}")
    recorded = meta.pop(_SELF_SHA256)
    if _fields_sha256(meta) != recorded:
        raise DataError(f"checkpoint {path} does not match its {_SELF_SHA256}: it was edited or damaged")
    _check_fields(path, meta)
    return meta


def _check_fields(manifest: Path, meta: dict[str, Any]) -> None:
    """The fields this module reads: the epoch count, the one file name it allows, that file's sha256."""
    done = meta.get("epochs_done")
    if not is_count(done):
        raise field_error(manifest, "epochs_done", done, "an integer >= 0")
    if meta.get("arrays_file") != arrays_name(done):
        raise field_error(manifest, "arrays_file", meta.get("arrays_file"),
                          f"only {arrays_name(done)}, a file in the checkpoint's own folder")
    if not is_sha256(meta.get("arrays_sha256")):
        raise field_error(manifest, "arrays_sha256", meta.get("arrays_sha256"), "a sha256, 64 hex digits")


def _read_regular_file(path: Path, what: str, max_bytes: int | None) -> bytes:
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


def _npz_arrays(payload: bytes, path: Path) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            for member in archive.infolist():
                _check_member(archive, member, path)
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"checkpoint arrays {path} cannot be loaded: {exc}") from exc


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> None:
    """One member as np.savez writes it: a stored .npy of plain numbers whose header claims no more
    data than the member holds. Checked before numpy reads it: numpy allocates what the header
    claims, a compressed member could inflate past any bound, and objects would need pickle."""
    if member.compress_type != zipfile.ZIP_STORED or not member.filename.endswith(".npy"):
        raise DataError(f"checkpoint arrays {path} hold {member.filename!r}, which is not an uncompressed .npy "
                        "array as jaxgram writes them")
    with archive.open(member) as stream:
        reader = _NPY_HEADER_READERS.get(np.lib.format.read_magic(stream))
        if reader is None:
            raise DataError(f"checkpoint arrays {path} hold {member.filename} in a .npy version jaxgram does not write")
        shape, _, dtype = reader(stream)
    if dtype.hasobject:
        raise DataError(f"checkpoint arrays {path} hold {member.filename} of Python objects, which only pickle "
                        "could load: refused")
    if math.prod(shape) * dtype.itemsize > member.file_size:
        raise DataError(f"checkpoint arrays {path} hold {member.filename} whose header claims shape {shape} of "
                        f"{dtype}, more than its {member.file_size:,} bytes")


def _fields_sha256(fields: dict[str, Any]) -> str:
    # Canonical JSON: the same fields give the same text however the file was indented.
    return sha256_bytes(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8"))
