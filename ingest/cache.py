"""Raw downloads cached under `{out}/raw/`, verified by the sha256 recorded in `raw/index.json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from jaxgram.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    sha256_bytes,
    sha256_file,
)


@dataclass(frozen=True)
class CachedRaw:
    path: Path
    source_url: str
    sha256: str
    bytes: int


class RawCache:
    """One file per (book, format); an entry counts only if the file's hash still matches."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.index_path = self.folder / "index.json"

    def _index(self) -> dict:
        try:
            index = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # a missing or damaged index just means a cold cache
        return index if isinstance(index, dict) else {}

    @staticmethod
    def key(book_id: int, fmt: str) -> str:
        return f"{book_id}.{fmt}"

    def get(self, book_id: int, fmt: str) -> tuple[CachedRaw, bytes] | None:
        entry = self._index().get(self.key(book_id, fmt))
        if not isinstance(entry, dict):
            return None
        try:
            path = self.folder / entry["file"]
            # A hand-edited index must not make the cache read files outside its folder.
            if not path.resolve().is_relative_to(self.folder.resolve()):
                return None
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                return None
            body = path.read_bytes()
            cached = CachedRaw(path=path, source_url=entry["source_url"], sha256=entry["sha256"], bytes=len(body))
        except (KeyError, TypeError, OSError):
            return None
        return cached, body

    def put(self, book_id: int, fmt: str, name: str, source_url: str, body: bytes) -> CachedRaw:
        """Write the body atomically, then record it (a crash in between leaves no entry)."""
        path = self.folder / str(book_id) / name
        atomic_write_bytes(path, body)
        cached = CachedRaw(path=path, source_url=source_url, sha256=sha256_bytes(body), bytes=len(body))
        index = self._index()
        record = asdict(cached)
        record["file"] = str(path.relative_to(self.folder))
        del record["path"]
        index[self.key(book_id, fmt)] = record
        atomic_write_json(self.index_path, index)
        return cached
