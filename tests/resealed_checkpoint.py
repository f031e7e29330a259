"""Edit a checkpoint's manifest as anyone can: change fields, then reseal manifest_sha256; or split a
checkpoint into the parts two processes write.

The checksum is the sha256 of the canonical JSON of the other fields, recomputed here from that
definition (not by calling jaxgram), so a test of a resealed manifest pins the format as well.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

MANIFEST = "checkpoint.json"


def reseal(folder: Path, **changes) -> None:
    """Set `changes` in the manifest in `folder` and give it a manifest_sha256 that matches them."""
    manifest = Path(folder) / MANIFEST
    fields = {key: value for key, value in json.loads(manifest.read_text()).items() if key != "manifest_sha256"}
    fields.update(changes)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    manifest.write_text(json.dumps({**fields, "manifest_sha256": hashlib.sha256(canonical).hexdigest()}))


def split(folder: Path, at: int, tables=("E", "W")) -> Path:
    """Rewrite the one-part checkpoint in `folder` as two processes write it: rows [at, V) of `tables` moved
    to epoch-N.part-1.npz, listed in the manifest with its sha256 and rows, the manifest resealed.
    Returns the new part's path. Written with numpy and hashlib, not jaxgram, so it pins the format."""
    folder = Path(folder)
    fields = json.loads((folder / MANIFEST).read_text())
    done, first = fields["epochs_done"], folder / fields["arrays_file"]
    with np.load(first) as npz:
        arrays = {name: npz[name] for name in npz.files}
    moved = [name for name in tables if name in arrays]
    part = folder / f"epoch-{done}.part-1.npz"
    written = {}
    for path, content in ((first, {**arrays, **{name: arrays[name][:at] for name in moved}}),
                          (part, {name: arrays[name][at:] for name in moved})):
        buffer = io.BytesIO()
        np.savez(buffer, **content)
        path.write_bytes(buffer.getvalue())
        written[path] = hashlib.sha256(buffer.getvalue()).hexdigest()
    rows = [at, len(arrays[moved[0]])]
    reseal(folder, arrays_sha256=written[first], parts=[{"file": part.name, "sha256": written[part], "rows": rows}])
    return part
