"""End-of-epoch checkpoints: arrays in .npz (no pickle), metadata in JSON, both sha256-checked.

Layout in `folder`: `epoch-N.npz` holds the arrays; `checkpoint.json` names it with its
sha256 and is written last, so it is the commit point: a process killed at any moment
leaves either the previous checkpoint or the new one, never a mix. The manifest also
carries the sha256 of its own fields (`manifest_sha256`), so an edited value is refused too.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxgram.errors import DataError
from jaxgram.fileio import atomic_open, atomic_write_json, sha256_bytes

MANIFEST = "checkpoint.json"
_SELF_SHA256 = "manifest_sha256"


@dataclass
class Checkpoint:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def save(folder: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    folder = Path(folder)
    name = f"epoch-{meta['epochs_done']}.npz"
    try:
        previous = _read_manifest(folder) if (folder / MANIFEST).exists() else None
    except DataError:  # a damaged old manifest is replaced, not trusted to name a file to delete
        previous = None
    # Streamed into the file and hashed on the way: no in-memory copy of the tables (at V = 100k and
    # D = 300 each copy is a quarter of a GB), no reading back, the file still replaced atomically.
    with atomic_open(folder / name, "wb") as handle:
        np.savez(handle, **{key: np.asarray(a) for key, a in arrays.items()})
    manifest = {**meta, "arrays_file": name, "arrays_sha256": handle.hexdigest()}
    manifest.pop(_SELF_SHA256, None)
    atomic_write_json(folder / MANIFEST, {**manifest, _SELF_SHA256: _fields_sha256(manifest)})
    if previous and previous.get("arrays_file") not in (None, name):
        (folder / previous["arrays_file"]).unlink(missing_ok=True)


def exists(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_meta(folder: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's recorded fields (config, epochs done, ...), checked, without loading its arrays."""
    return _read_manifest(Path(folder))


def load(folder: str | os.PathLike) -> Checkpoint:
    folder = Path(folder)
    meta = _read_manifest(folder)
    arrays_path = folder / str(meta.get("arrays_file"))
    try:
        payload = arrays_path.read_bytes()
    except OSError as exc:
        raise DataError(f"checkpoint arrays {arrays_path} cannot be read: {exc.strerror or exc}") from exc
    if sha256_bytes(payload) != meta.get("arrays_sha256"):
        raise DataError(f"checkpoint arrays {arrays_path} do not match the sha256 in {folder / MANIFEST}: truncated or altered")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError) as exc:  # object arrays would need pickle: refused, never executed
        raise DataError(f"checkpoint arrays {arrays_path} cannot be loaded: {exc}") from exc
    return Checkpoint(arrays, meta)


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"checkpoint {path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or any(key not in meta for key in ("arrays_file", "arrays_sha256", _SELF_SHA256)):
        raise DataError(f"checkpoint {path} is missing arrays_file/arrays_sha256/{_SELF_SHA256}")
    recorded = meta.pop(_SELF_SHA256)
    if _fields_sha256(meta) != recorded:
        raise DataError(f"checkpoint {path} does not match its {_SELF_SHA256}: it was edited or damaged")
    return meta


def _fields_sha256(fields: dict[str, Any]) -> str:
    # Canonical JSON: the same fields give the same text however the file was indented.
    return sha256_bytes(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8"))
