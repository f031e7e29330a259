"""End-of-epoch checkpoints: arrays in .npz (no pickle), metadata in JSON, both sha256-checked.

Layout in `folder`: `epoch-N.npz` holds the arrays; `checkpoint.json` names it with its
sha256 and is written last, so it is the commit point: a process killed at any moment
leaves either the previous checkpoint or the new one, never a mix. The manifest also
carries the sha256 of its own fields (`manifest_sha256`), so an edited value is refused too.

A checkpoint of row-sharded tables is written by the processes that hold the rows: each
process P > 0 writes its rows of every table to `epoch-N.part-P.npz` (write_part), and the
manifest lists those `parts`, each with its sha256 and row range [start, stop); `epoch-N.npz`
(part 0) holds every other array and the tables' rows before the first part. A checkpoint of
one part (a single process, or tables every process holds whole) is the plain layout above.
The parts' names carry the epoch, so a new checkpoint never overwrites a file of the one the
manifest names until the manifest's rename commits it. (orbax-checkpoint writes sharded
checkpoints too, but reads its files through tensorstore, with no sha256 and none of the
checks below on what it opens: a damaged or hostile checkpoint would not be refused in one line.)

A checkpoint is input like any other file: whoever edits the manifest can reseal its
checksum. So the manifest may name only `epoch-N.npz` and `epoch-N.part-P.npz` of its own
`epochs_done`, plain files in its own folder, never followed through a symlink; each file is read
only if it is a regular file, and no further than its size (and the caller's bound, `max_bytes`)
allows; an .npz member is read only as np.savez writes it. Nothing outside `folder` is ever read or
removed because a file in it said so.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxgram.checkpoint_files import npz_arrays, read_regular_file
from jaxgram.errors import DataError
from jaxgram.fileio import atomic_open, atomic_write_json, sha256_bytes

MANIFEST = "checkpoint.json"
_SELF_SHA256 = "manifest_sha256"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_PARTS = "parts"
# A manifest holds the config and two numbers per epoch: a few kilobytes. A file past this is
# not one, and is refused unread.
MAX_MANIFEST_BYTES = 1 << 20
# What np.savez adds around each array (zip local header, data descriptor and central directory
# entry, the .npy header: about 350 bytes) and once around the archive, with room to spare.
NPZ_BYTES_PER_ARRAY = 1024
NPZ_BYTES_PER_ARCHIVE = 4096


@dataclass
class Checkpoint:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


@dataclass(frozen=True)
class Part:
    """One arrays file of a checkpoint: its tables' rows [start, stop) (stop None: to the end)."""

    file: str
    sha256: str
    start: int
    stop: int | None


def arrays_name(epochs_done: int) -> str:
    """The arrays file of the checkpoint after `epochs_done` epochs: the only name a manifest may give."""
    return f"epoch-{epochs_done}.npz"


def part_name(epochs_done: int, process: int) -> str:
    """The file of process `process`'s rows (process 0's are in arrays_name's file) after `epochs_done` epochs."""
    return f"epoch-{epochs_done}.part-{process}.npz"


def npz_bytes_bound(arrays: Iterable[tuple[tuple[int, ...], np.dtype]]) -> int:
    """The most bytes np.savez writes for arrays of these (shape, dtype): a bound to read an arrays file against."""
    data = sum(math.prod(shape) * np.dtype(dtype).itemsize + NPZ_BYTES_PER_ARRAY for shape, dtype in arrays)
    return data + NPZ_BYTES_PER_ARCHIVE


@dataclass(frozen=True)
class Blocks:
    """An array of `shape` and `dtype` whose consecutive row blocks `blocks()` yields (the shards a
    process's devices hold): written one after the other, never joined into one array in memory."""

    shape: tuple[int, ...]
    dtype: np.dtype
    blocks: Callable[[], Iterable[np.ndarray]]


def write_part(folder: str | os.PathLike, name: str, arrays: Mapping[str, np.ndarray | Blocks]) -> str:
    """Write `arrays` to folder/name atomically, as np.savez lays them out; returns the file's sha256."""
    # Streamed into the file and hashed on the way: no in-memory copy of the tables (at V = 100k and
    # D = 300 each copy is a quarter of a GB), no reading back, the file still replaced atomically.
    with atomic_open(Path(folder) / name, "wb") as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for key, value in arrays.items():
                with archive.open(f"{key}.npy", "w", force_zip64=True) as member:  # as np.savez writes them
                    if isinstance(value, Blocks):
                        _write_blocks(member, key, value)
                    else:
                        np.lib.format.write_array(member, np.asanyarray(value))
    return handle.hexdigest()


def _write_blocks(member, name: str, value: Blocks) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(value.dtype)), "fortran_order": False,
              "shape": tuple(value.shape)}
    np.lib.format.write_array_header_1_0(member, header)
    written = 0
    for block in value.blocks():
        block = np.ascontiguousarray(block, dtype=value.dtype)
        member.write(block)
        written += block.nbytes
    if written != math.prod(value.shape) * np.dtype(value.dtype).itemsize:
        raise ValueError(f"the blocks of {name} hold {written} bytes, not those of shape {value.shape}")


def save(folder: str | os.PathLike, arrays: Mapping[str, Any], meta: dict[str, Any],
         parts: Iterable[Part] = ()) -> None:
    """Write part 0 (`arrays`), then commit the checkpoint: its manifest lists `parts`, which the other
    processes have written already (each must be a plain file in `folder`), in the order of their rows."""
    folder = Path(folder)
    name = arrays_name(meta["epochs_done"])
    previous = _previous_files(folder)
    listed = [{"file": part.file, "sha256": part.sha256, "rows": [part.start, part.stop]} for part in parts]
    for part in listed:
        if not _is_plain_file(folder / part["file"]):
            raise DataError(f"checkpoint part {folder / part['file']} is not there for process 0 to list: every "
                            "process must write the same --out folder, on a filesystem they share")
    manifest = {key: value for key, value in meta.items() if key not in (_SELF_SHA256, _PARTS)}
    manifest.update(arrays_file=name, arrays_sha256=write_part(folder, name, arrays))
    if listed:
        manifest[_PARTS] = listed
    atomic_write_json(folder / MANIFEST, {**manifest, _SELF_SHA256: _fields_sha256(manifest)})
    for old in previous - {name, *(part["file"] for part in listed)}:
        # A plain epoch-N[.part-P].npz in this folder (a symlink there is removed, never what it points to).
        # One that cannot be removed (a folder of that name) is left: the manifest no longer names it.
        with contextlib.suppress(OSError):
            (folder / old).unlink(missing_ok=True)


def _previous_files(folder: Path) -> set[str]:
    """The arrays files the checkpoint in `folder` names, if it passes every check; none if there is none."""
    try:
        return {part.file for part in parts(_read_manifest(folder))} if exists(folder) else set()
    except DataError:  # a damaged or hostile old manifest is replaced, not trusted to name a file to delete
        return set()


def _is_plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def parts(meta: dict[str, Any]) -> list[Part]:
    """The checkpoint's arrays files in the order of their rows: part 0 (arrays_file) first."""
    listed = [Part(p["file"], p["sha256"], *p["rows"]) for p in meta.get(_PARTS, [])]
    first = Part(meta["arrays_file"], meta["arrays_sha256"], 0, listed[0].start if listed else None)
    return [first, *listed]


def check_parts_present(folder: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Refuse, in one line naming it, a checkpoint any of whose files is missing (a partial checkpoint), a
    symlink or not a plain file: checked by every process, which then reads only the parts it needs."""
    for part in parts(meta):
        path = Path(folder) / part.file
        if not os.path.lexists(path):
            raise DataError(f"checkpoint part {path} is missing, so the checkpoint in {folder} is incomplete: refused")
        if os.path.islink(path):
            raise DataError(f"checkpoint arrays {path} is a symlink: a checkpoint's files must be plain files in "
                            "its own folder")
        if not _is_plain_file(path):
            raise DataError(f"checkpoint arrays {path} is not a regular file: a checkpoint's files must be plain files")


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
    """The arrays of the checkpoint in `folder` whose manifest is `meta` (read_meta's), each table's parts
    joined, each array its own writable copy; an arrays file over `max_bytes` is refused unread."""
    _check_fields(Path(folder) / MANIFEST, meta)
    first, *others = parts(meta)
    arrays = read_part(folder, first, max_bytes)
    rows = [read_part(folder, part, max_bytes) for part in others]
    return {name: np.concatenate([array, *(part[name] for part in rows)]) if rows and name in rows[0]
            else np.array(array) for name, array in arrays.items()}


def read_part(folder: str | os.PathLike, part: Part, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of one of parts(meta), its sha256 checked: read-only views of the file's bytes, read once
    into memory; a file over `max_bytes` is refused unread."""
    path = Path(folder) / part.file  # a plain name, checked with the manifest
    payload = read_regular_file(path, "checkpoint arrays", max_bytes)
    if sha256_bytes(payload) != part.sha256:
        raise sha256_mismatch(folder, part)
    return npz_arrays(payload, path)


def sha256_mismatch(folder: str | os.PathLike, part: Part) -> DataError:
    return DataError(f"checkpoint arrays {Path(folder) / part.file} do not match the sha256 in "
                     f"{Path(folder) / MANIFEST}: truncated or altered")


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
    text = read_regular_file(path, "checkpoint", MAX_MANIFEST_BYTES)
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
    listed = meta.get(_PARTS, [])
    if _PARTS in meta and not (isinstance(listed, list) and listed):
        raise field_error(manifest, _PARTS, listed, "a list of at least one part")
    start, names = None, set()
    for part in listed:
        if not _is_part(part, done, start) or part["file"] in names:
            raise field_error(manifest, _PARTS, part, f"{part_name(done, 'P')} (P >= 1, each once) with its sha256 "
                              f"and rows [start, stop) going on from {'part 0' if start is None else start}")
        start, names = part["rows"][1], names | {part["file"]}


def _is_part(part: Any, done: int, start: int | None) -> bool:
    """A manifest's entry of one part: its own file name, a sha256, rows that go on from `start` (None: any)."""
    if not isinstance(part, dict) or sorted(part) != ["file", "rows", "sha256"] or not isinstance(part["file"], str):
        return False
    rows = part["rows"]
    return (re.fullmatch(rf"epoch-{done}\.part-[1-9][0-9]*\.npz", part["file"]) is not None
            and is_sha256(part["sha256"]) and isinstance(rows, list) and len(rows) == 2
            and all(is_count(row) for row in rows) and rows[0] <= rows[1] and start in (None, rows[0]))


def _fields_sha256(fields: dict[str, Any]) -> str:
    # Canonical JSON: the same fields give the same text however the file was indented.
    return sha256_bytes(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8"))
