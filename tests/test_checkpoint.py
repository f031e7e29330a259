import hashlib
import io
import json
import os
import re
import zipfile

import numpy as np
import pytest
from resealed_checkpoint import reseal

from jaxgram import checkpoint, checkpoint_files
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
    with checkpoint_files.HashedFile(tmp_path / "epoch-1.npz", "checkpoint arrays", None) as streamed:
        with pytest.raises(DataError, match=r"epoch-1\.npz hold " + refusal):  # as restoring onto a mesh reads it
            streamed.members()


# -- a checkpoint in parts, each written by the process holding its rows -------------------------------

def _table_arrays():
    return {"E": np.arange(20, dtype=np.float32).reshape(5, 4), "key": np.array([1, 2], np.uint32),
            "W": -np.arange(20, dtype=np.float32).reshape(5, 4)}


def _save_in_parts(folder, arrays, epochs_done=1, at=2):
    """What two processes write: process 1 its rows [at, V) of E and W, process 0 the rest and the manifest."""
    rows = {name: arrays[name][at:] for name in ("E", "W")}
    blocks = {name: checkpoint.Blocks(rows[name].shape, rows[name].dtype, lambda r=rows[name]: [r[:1], r[1:]])
              for name in rows}  # as shards: written block by block
    part = checkpoint.Part(checkpoint.part_name(epochs_done, 1), "", at, len(arrays["E"]))
    sha256 = checkpoint.write_part(folder, part.file, blocks)
    first = {name: array[:at] if name in rows else array for name, array in arrays.items()}
    checkpoint.save(folder, first, {"epochs_done": epochs_done},
                    [checkpoint.Part(part.file, sha256, part.start, part.stop)])


def test_a_checkpoint_in_parts_loads_whole_and_the_next_save_removes_the_old_parts(tmp_path):
    _save_in_parts(tmp_path, _table_arrays())
    manifest = json.loads((tmp_path / "checkpoint.json").read_text())
    assert [(part["file"], part["rows"]) for part in manifest["parts"]] == [("epoch-1.part-1.npz", [2, 5])]
    with np.load(tmp_path / "epoch-1.part-1.npz") as part:
        assert sorted(part.files) == ["E", "W"] and part["E"].shape == (3, 4)
    loaded = checkpoint.load(tmp_path)
    for name, array in _table_arrays().items():
        np.testing.assert_array_equal(loaded.arrays[name], array)
    assert [(p.file, p.start, p.stop) for p in checkpoint.parts(loaded.meta)] == [
        ("epoch-1.npz", 0, 2), ("epoch-1.part-1.npz", 2, 5)]
    checkpoint.save(tmp_path, _table_arrays(), {"epochs_done": 2})  # one part now: the old parts go
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "epoch-2.npz"]


def test_a_part_written_in_blocks_is_what_numpy_writes_whole(tmp_path):
    E = _table_arrays()["E"]
    checkpoint.write_part(tmp_path, "blocks.npz", {"E": checkpoint.Blocks(E.shape, E.dtype, lambda: [E[:2], E[2:]])})
    checkpoint.write_part(tmp_path, "whole.npz", {"E": E})
    assert (tmp_path / "blocks.npz").read_bytes() == (tmp_path / "whole.npz").read_bytes()
    with pytest.raises(ValueError, match="not those of shape"):
        checkpoint.write_part(tmp_path, "short.npz", {"E": checkpoint.Blocks(E.shape, E.dtype, lambda: [E[:2]])})
    assert not (tmp_path / "short.npz").exists()


def test_a_part_that_is_not_in_the_folder_is_not_committed(tmp_path):
    """A process that wrote its part elsewhere (an --out not shared): process 0 refuses to list it."""
    checkpoint.save(tmp_path, _table_arrays(), {"epochs_done": 1})
    absent = checkpoint.Part(checkpoint.part_name(2, 1), "0" * 64, 2, 5)
    with pytest.raises(DataError, match=r"epoch-2\.part-1\.npz is not there .* a filesystem they share"):
        checkpoint.save(tmp_path, _table_arrays(), {"epochs_done": 2}, [absent])
    assert checkpoint.load(tmp_path).meta["epochs_done"] == 1  # the checkpoint before stands


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, refusal", [
    (lambda part: part.unlink(), r"part .*epoch-1\.part-1\.npz is missing, so the checkpoint in .* is incomplete: refused"),
    (_flip_a_byte, r"epoch-1\.part-1\.npz do not match the sha256"),
    (lambda part: os.truncate(part, 1 << 40), r"epoch-1\.part-1\.npz is 1,099,511,627,776 bytes, more than"),
])
def test_a_missing_damaged_or_oversized_part_is_refused_naming_it(tmp_path, damage, refusal):
    _save_in_parts(tmp_path, _table_arrays())
    damage(tmp_path / "epoch-1.part-1.npz")
    meta = checkpoint.read_meta(tmp_path)
    with pytest.raises(DataError, match=refusal) as refused:
        checkpoint.check_parts_present(tmp_path, meta)
        checkpoint.read_arrays(tmp_path, meta, max_bytes=1 << 20)
    assert "\n" not in str(refused.value)


def _part_entry(**changes):
    return {"file": "epoch-1.part-1.npz", "sha256": "0" * 64, "rows": [2, 5], **changes}


@pytest.mark.parametrize("parts", [
    [_part_entry(file="../victim.txt")], [_part_entry(file="epoch-2.part-1.npz")], [_part_entry(file="epoch-1.npz")],
    [_part_entry(file="epoch-1.part-0.npz")], [_part_entry(file="sub/epoch-1.part-1.npz")],
    [_part_entry(), _part_entry(rows=[5, 6])],  # the same file twice
    [_part_entry(), _part_entry(file="epoch-1.part-2.npz", rows=[6, 8])],  # a gap
    [_part_entry(rows=[5, 2])], [_part_entry(rows=[2, "5"])], [_part_entry(rows=[2, True])], [_part_entry(sha256="ab")],
    [_part_entry(extra=1)], ["epoch-1.part-1.npz"], [], "epoch-1.part-1.npz",
])
def test_a_resealed_manifest_may_list_only_its_own_parts_in_row_order(tmp_path, parts):
    """A part elsewhere, of another epoch, twice, out of order, or mistyped: refused in one line by every
    reader, and the next save neither reads nor removes what it named."""
    victim = _victim(tmp_path)
    folder = tmp_path / "checkpoint"
    _save_in_parts(folder, _table_arrays())
    reseal(folder, parts=parts)
    for read in (checkpoint.load, checkpoint.read_meta):
        with pytest.raises(DataError, match=r"checkpoint\.json has parts=.*which is not allowed: ") as refused:
            read(folder)
        assert "\n" not in str(refused.value)
    checkpoint.save(folder, _table_arrays(), {"epochs_done": 2})
    assert victim.read_text() == "the user's own file\n" and checkpoint.load(folder).meta["epochs_done"] == 2


def test_a_symlinked_part_is_refused_unread(tmp_path):
    folder = tmp_path / "checkpoint"
    _save_in_parts(folder, _table_arrays())
    (folder / "epoch-1.part-1.npz").rename(tmp_path / "outside.npz")
    (folder / "epoch-1.part-1.npz").symlink_to(tmp_path / "outside.npz")
    meta = checkpoint.read_meta(folder)
    with pytest.raises(DataError, match=r"epoch-1\.part-1\.npz is a symlink"):
        checkpoint.check_parts_present(folder, meta)
    with pytest.raises(DataError, match=r"epoch-1\.part-1\.npz is a symlink"):
        checkpoint.load(folder)
    checkpoint.save(folder, _table_arrays(), {"epochs_done": 2})
    assert (tmp_path / "outside.npz").is_file() and not os.path.lexists(folder / "epoch-1.part-1.npz")


def test_a_part_is_held_in_memory_once_and_load_gives_writable_copies(tmp_path):
    """read_part's arrays are read-only views of the file's bytes (no second copy of a part); load's are the
    caller's to change. A Fortran-ordered array (np.savez writes it so) reads back as it was."""
    arrays = {**_table_arrays(), "F": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3))}
    checkpoint.save(tmp_path, arrays, {"epochs_done": 1})
    viewed = checkpoint.read_part(tmp_path, checkpoint.parts(checkpoint.read_meta(tmp_path))[0])
    loaded = checkpoint.load(tmp_path).arrays
    for name, array in arrays.items():
        assert not viewed[name].flags.writeable and not viewed[name].flags.owndata
        assert loaded[name].flags.writeable
        np.testing.assert_array_equal(viewed[name], array)
        np.testing.assert_array_equal(loaded[name], array)


# -- a file read once, in order, through one descriptor (restoring onto a mesh) ---------------------------

def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_a_file_read_in_blocks_hashes_to_its_sha256(tmp_path):
    """members() reads the structure, read_into the data a block at a time, sha256() the digest of every byte."""
    table = np.arange(24, dtype=np.float32).reshape(6, 4)
    data = _npz_bytes(E=table, key=np.array([1, 2], np.uint32))
    (path := tmp_path / "epoch-1.npz").write_bytes(data)
    with checkpoint_files.HashedFile(path, "checkpoint arrays", None) as file:
        members = file.members()
        assert {name: (m.shape, m.dtype) for name, m in members.items()} == {
            "E": ((6, 4), np.float32), "key": ((2,), np.uint32)}
        file.skip_to(members["E"].offset + 2 * 16)  # rows 2 and 3 only, as a shard would take them
        rows = np.empty((2, 4), np.float32)
        file.read_into(rows)
        assert file.sha256() == hashlib.sha256(data).hexdigest()
    np.testing.assert_array_equal(rows, table[2:4])


def test_a_file_whose_structure_changed_before_its_bytes_were_hashed_is_refused(tmp_path):
    """The structure read first must be the bytes hashed: a file rewritten in place between the two, even into
    the very bytes the manifest's sha256 names, is refused, so data is never placed by another file's layout."""
    claimed = _npz_bytes(E=np.zeros((4, 3), np.float32))
    read_first = _npz_bytes(E=np.zeros((3, 4), np.float32))  # the same size: only the header's shape differs
    assert len(read_first) == len(claimed) and read_first != claimed
    (path := tmp_path / "epoch-1.npz").write_bytes(read_first)
    with checkpoint_files.HashedFile(path, "checkpoint arrays", None) as file:
        assert file.members()["E"].shape == (3, 4)
        with open(path, "r+b") as rewrite:
            rewrite.write(claimed)
        with pytest.raises(DataError, match=r"checkpoint arrays .* changed while it was read$"):
            file.sha256()


def test_a_file_that_shrank_or_grew_while_read_is_refused(tmp_path):
    data, path = _npz_bytes(E=np.zeros((64, 4), np.float32)), tmp_path / "epoch-1.npz"
    for size in (len(data) // 2, len(data) + 1):
        path.write_bytes(data)
        with checkpoint_files.HashedFile(path, "checkpoint arrays", None) as file:
            file.members()
            os.truncate(path, size)
            with pytest.raises(DataError, match=r"changed size while it was read$"):
                file.sha256()

