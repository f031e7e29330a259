"""Edit a checkpoint's manifest as anyone can: change fields, then reseal manifest_sha256.

The checksum is the sha256 of the canonical JSON of the other fields, recomputed here from that
definition (not by calling jaxgram), so a test of a resealed manifest pins the format as well.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "checkpoint.json"


def reseal(folder: Path, **changes) -> None:
    """Set `changes` in the manifest in `folder` and give it a manifest_sha256 that matches them."""
    manifest = Path(folder) / MANIFEST
    fields = {key: value for key, value in json.loads(manifest.read_text()).items() if key != "manifest_sha256"}
    fields.update(changes)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    manifest.write_text(json.dumps({**fields, "manifest_sha256": hashlib.sha256(canonical).hexdigest()}))
