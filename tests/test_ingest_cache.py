"""Raw download cache: atomic files, sha256 index, damaged entries treated as missing."""

from __future__ import annotations

import json

from ingest.cache import RawCache
from jaxgram.fileio import sha256_bytes

BODY = b"raw book bytes\n" * 100


def test_put_then_get_round_trip(tmp_path):
    cache = RawCache(tmp_path / "raw")
    stored = cache.put(7, "text", "pg7.txt", "http://mirror/cache/epub/7/pg7.txt", BODY)
    assert stored.path == tmp_path / "raw" / "7" / "pg7.txt" and stored.sha256 == sha256_bytes(BODY)
    cached, body = cache.get(7, "text")
    assert body == BODY and cached == stored
    index = json.loads((tmp_path / "raw" / "index.json").read_text())
    assert index["7.text"]["sha256"] == sha256_bytes(BODY) and index["7.text"]["bytes"] == len(BODY)
    assert not [p for p in (tmp_path / "raw").rglob(".tmp-*")]


def test_formats_are_separate_entries(tmp_path):
    cache = RawCache(tmp_path)
    cache.put(7, "text", "pg7.txt", "u1", BODY)
    assert cache.get(7, "html") is None


def test_hash_mismatch_missing_file_or_bad_index_is_a_miss(tmp_path):
    cache = RawCache(tmp_path)
    stored = cache.put(7, "text", "pg7.txt", "u", BODY)
    stored.path.write_bytes(BODY[:10])
    assert cache.get(7, "text") is None
    stored.path.unlink()
    assert cache.get(7, "text") is None
    (tmp_path / "index.json").write_text("{not json")
    assert cache.get(7, "text") is None
    cache.put(7, "text", "pg7.txt", "u", BODY)  # a damaged index is rebuilt
    assert cache.get(7, "text")[1] == BODY


def test_file_without_index_entry_is_not_trusted(tmp_path):
    # A crash between writing the file and the index leaves an unlisted file: refetched.
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "pg7.txt").write_bytes(BODY)
    assert RawCache(tmp_path).get(7, "text") is None
