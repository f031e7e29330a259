import json
import re

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
    # An npz with a pickled object array under a valid manifest must not execute or load: allow_pickle=False.
    checkpoint.save(tmp_path, {"E": np.array([{"x": 1}], dtype=object)}, {"epochs_done": 1})
    with pytest.raises(DataError, match="epoch-1.npz.*pickle"):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("edit", [
    lambda meta: {**meta, "epochs_done": 2},
    lambda meta: {**meta, "note": "other"},
    lambda meta: {k: v for k, v in meta.items() if k != "manifest_sha256"},
    lambda meta: {**meta, "arrays_file": "epoch-1.npz ", "manifest_sha256": meta["manifest_sha256"]},
])
def test_an_edited_manifest_is_refused_naming_it(tmp_path, edit):
    """Valid JSON with one field changed, or without its own checksum: refused, never trusted."""
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 1, "note": "first"})
    manifest = tmp_path / "checkpoint.json"
    manifest.write_text(json.dumps(edit(json.loads(manifest.read_text()))))
    with pytest.raises(DataError, match=re.escape(str(manifest)) + ".*manifest_sha256"):
        checkpoint.load(tmp_path)


def test_reindented_manifest_still_loads_and_save_replaces_a_damaged_one(tmp_path):
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 1, "note": "first"})
    manifest = tmp_path / "checkpoint.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()), indent=7))
    assert checkpoint.load(tmp_path).meta == {"epochs_done": 1, "note": "first", "arrays_file": "epoch-1.npz",
                                              "arrays_sha256": json.loads(manifest.read_text())["arrays_sha256"]}
    manifest.write_text("{")
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 2})
    assert checkpoint.load(tmp_path).meta["epochs_done"] == 2
