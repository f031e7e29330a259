"""jaxgram.fileio: atomic writes, and the sha256 taken as a file is written, never read back."""

import hashlib

import numpy as np
import pytest

from jaxgram.fileio import (
    SHA256SUMS,
    atomic_open,
    atomic_write_text,
    recorded_sha256,
    write_sha256sums,
    written_sha256,
)


def test_the_digest_taken_while_writing_is_the_files(tmp_path):
    path = tmp_path / "a.bin"
    with atomic_open(path, "wb") as handle:
        for block in range(5):
            handle.write(bytes([block]) * 100_000)
    assert handle.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest() == written_sha256(path)
    atomic_write_text(tmp_path / "b.txt", "été\n")  # a text handle hashes the bytes it encodes
    assert written_sha256(tmp_path / "b.txt") == hashlib.sha256("été\n".encode()).hexdigest()


def test_numpy_archives_stream_through_the_hashing_handle(tmp_path):
    arrays = {"E": np.arange(12.0).reshape(3, 4), "key": np.uint32([1, 2])}
    with atomic_open(tmp_path / "a.npz", "wb") as handle:
        np.savez(handle, **arrays)  # zipfile cannot seek back on it: it streams with data descriptors
    with np.load(tmp_path / "a.npz", allow_pickle=False) as loaded:
        assert {name: loaded[name].tolist() for name in loaded.files} == {k: v.tolist() for k, v in arrays.items()}
    assert handle.hexdigest() == hashlib.sha256((tmp_path / "a.npz").read_bytes()).hexdigest()


def test_sha256sums_reads_back_only_files_changed_since_they_were_written(tmp_path, monkeypatch):
    import jaxgram.fileio as fileio

    for name in ("kept", "changed"):
        atomic_write_text(tmp_path / name, name * 1000)
    (tmp_path / "changed").write_text("edited by someone else")
    (tmp_path / "foreign").write_text("never written by atomic_open")
    read_back = []
    real = fileio.sha256_file
    monkeypatch.setattr(fileio, "sha256_file", lambda path: read_back.append(path.name) or real(path))
    write_sha256sums(tmp_path, ["kept", "changed", "foreign"])
    assert read_back == ["changed", "foreign"]  # "kept" was hashed as it was written
    for name in ("kept", "changed", "foreign"):
        assert recorded_sha256(tmp_path / name) == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    assert (tmp_path / SHA256SUMS).is_file()


def test_a_failed_write_records_nothing_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    before = written_sha256(path)
    with pytest.raises(RuntimeError), atomic_open(path, "wb") as handle:
        handle.write(b"half of the new")
        raise RuntimeError("stopped")
    assert path.read_text() == "old" and written_sha256(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
