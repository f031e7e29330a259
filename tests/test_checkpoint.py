import json

import numpy as np
import pytest

from jaxgram import checkpoint
from jaxgram.errors import DataError


def _arrays():
    return {"E": np.arange(12, dtype=np.float32).reshape(3, 4), "key": np.array([1, 2], np.uint32)}


def test_round_trip_and_old_arrays_are_removed(tmp_path):
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 1, "note": "first"})
    second = {"E": np.ones((3, 4), np.float32), "key": np.array([3, 4], np.uint32)}
    checkpoint.save(tmp_path, second, {"epochs_done": 2, "note": "second"})
    loaded = checkpoint.load(tmp_path)
    assert loaded.meta["note"] == "second" and loaded.meta["epochs_done"] == 2
    for name in second:
        np.testing.assert_array_equal(loaded.arrays[name], second[name])
        assert loaded.arrays[name].dtype == second[name].dtype
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "epoch-2.npz"]


def test_truncated_arrays_are_refused(tmp_path):
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 1})
    path = tmp_path / "epoch-1.npz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="epoch-1.npz.*sha256"):
        checkpoint.load(tmp_path)


def test_broken_or_missing_manifest_is_refused(tmp_path):
    assert not checkpoint.exists(tmp_path)
    with pytest.raises(DataError, match="checkpoint.json"):
        checkpoint.load(tmp_path)
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 1})
    manifest = tmp_path / "checkpoint.json"
    manifest.write_text(manifest.read_text()[:20])
    with pytest.raises(DataError, match="checkpoint.json is not valid JSON"):
        checkpoint.load(tmp_path)


def test_arrays_with_objects_cannot_be_loaded(tmp_path):
    # A hand-made npz with a pickled object array must not execute or load: allow_pickle=False.
    import hashlib
    import io

    buffer = io.BytesIO()
    np.savez(buffer, E=np.array([{"x": 1}], dtype=object))
    (tmp_path / "epoch-1.npz").write_bytes(buffer.getvalue())
    (tmp_path / "checkpoint.json").write_text(json.dumps({
        "epochs_done": 1, "arrays_file": "epoch-1.npz", "arrays_sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}))
    with pytest.raises(DataError, match="epoch-1.npz.*pickle"):
        checkpoint.load(tmp_path)
