import hashlib
import io
import json
import os
import re
import zipfile

import numpy as np
import pytest
from resealed_checkpoint import reseal

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


# -- a checkpoint is untrusted input: whoever edits the manifest can reseal its checksum --------------

def _victim(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    return victim


@pytest.mark.parametrize("named", ["../victim.txt", "{victim}", "sub/epoch-1.npz", "./epoch-1.npz", "epoch-2.npz",
                                   ""])
def test_a_resealed_manifest_may_name_only_its_own_arrays_file(tmp_path, named):
    """arrays_file elsewhere (relative, absolute, in a subfolder) or another epoch's: refused by every
    reader, and the next save neither reads nor removes what it named."""
    victim, folder = _victim(tmp_path), tmp_path / "checkpoint"
    checkpoint.save(folder, _arrays(), {"epochs_done": 1})
    reseal(folder, arrays_file=named.format(victim=victim))
    for read in (checkpoint.load, checkpoint.read_meta):
        with pytest.raises(DataError, match=r"checkpoint\.json has arrays_file=.*only epoch-1\.npz"):
            read(folder)
    checkpoint.save(folder, _arrays(), {"epochs_done": 2})
    assert victim.read_text() == "the user's own file\n"
    assert checkpoint.load(folder).meta["epochs_done"] == 2


@pytest.mark.parametrize("field, value", [("epochs_done", "1"), ("epochs_done", True), ("epochs_done", -1),
                                          ("arrays_sha256", 7), ("arrays_sha256", "ab")])
def test_a_resealed_field_of_the_wrong_type_is_one_line_naming_it(tmp_path, field, value):
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 1})
    reseal(tmp_path, **{field: value})
    with pytest.raises(DataError, match=f"has {field}={re.escape(json.dumps(value))}, which is not allowed: ") as refused:
        checkpoint.load(tmp_path)
    assert "\n" not in str(refused.value)


def test_a_symlinked_file_is_refused_unread_and_save_removes_only_the_link(tmp_path):
    """An arrays file or manifest that is a symlink (here to a valid copy outside the folder) is never
    followed; the next save replaces the links, and the files they pointed to stay."""
    folder = tmp_path / "checkpoint"
    checkpoint.save(folder, _arrays(), {"epochs_done": 1})
    for name in ("epoch-1.npz", checkpoint.MANIFEST):
        outside = tmp_path / f"outside-{name}"
        (folder / name).rename(outside)
        (folder / name).symlink_to(outside)
        with pytest.raises(DataError, match=re.escape(str(folder / name)) + " is a symlink"):
            checkpoint.load(folder)
        (folder / name).unlink()
        outside.rename(folder / name)
    (folder / "epoch-1.npz").rename(tmp_path / "outside.npz")
    (folder / "epoch-1.npz").symlink_to(tmp_path / "outside.npz")
    checkpoint.save(folder, _arrays(), {"epochs_done": 2})
    assert (tmp_path / "outside.npz").is_file() and not os.path.lexists(folder / "epoch-1.npz")


def test_an_arrays_file_over_the_bound_is_refused_before_a_byte_is_read(tmp_path):
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 1})
    bound = checkpoint.npz_bytes_bound((a.shape, a.dtype) for a in _arrays().values())
    assert checkpoint.load(tmp_path, max_bytes=bound).meta["epochs_done"] == 1
    os.truncate(tmp_path / "epoch-1.npz", 1 << 40)  # sparse: a terabyte that takes no disk, and no time to refuse
    with pytest.raises(DataError, match=r"epoch-1\.npz is 1,099,511,627,776 bytes, more than the [\d,]+ .*unread"):
        checkpoint.load(tmp_path, max_bytes=bound)


@pytest.mark.parametrize("shapes", [[()], [(3, 4), (2,)], [(1000, 300), (1000, 300), (2,), ()]])
def test_the_bound_holds_every_file_save_writes(tmp_path, shapes):
    arrays = {f"a{i}": np.zeros(shape, np.float32) for i, shape in enumerate(shapes)}
    checkpoint.save(tmp_path, arrays, {"epochs_done": 1})
    size = (tmp_path / "epoch-1.npz").stat().st_size
    data = sum(a.nbytes for a in arrays.values())
    assert data < size <= checkpoint.npz_bytes_bound((a.shape, a.dtype) for a in arrays.values())


def _compressed(buffer):
    np.savez_compressed(buffer, E=np.zeros(4_000_000, np.float32))  # 16 MB that deflate to a few kB


def _not_an_array(buffer):
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("E", b"raw bytes, not a .npy")


def _header_claims_more(buffer):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**10,)})
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("E.npy", header.getvalue() + bytes(16))


@pytest.mark.parametrize("write, refusal", [
    (_compressed, "'E.npy', which is not an uncompressed .npy"),
    (_not_an_array, "'E', which is not an uncompressed .npy"),
    (_header_claims_more, r"E.npy whose header claims shape \(10000000000,\) of float32, more than its"),
])
def test_npz_members_are_read_only_as_savez_writes_them(tmp_path, write, refusal):
    """A member that would inflate (deflate), is no .npy, or whose header claims more than it holds, under a
    resealed sha256: refused before numpy allocates or inflates anything."""
    checkpoint.save(tmp_path, _arrays(), {"epochs_done": 1})
    buffer = io.BytesIO()
    write(buffer)
    (tmp_path / "epoch-1.npz").write_bytes(buffer.getvalue())
    reseal(tmp_path, arrays_sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    with pytest.raises(DataError, match=r"epoch-1\.npz hold " + refusal):
        checkpoint.load(tmp_path)
