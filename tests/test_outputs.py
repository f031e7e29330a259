"""jaxgram.outputs: the files `jaxgram train --out` writes, and their checksum record."""

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest

from jaxgram.fileio import SHA256SUMS, recorded_sha256, sha256_file
from jaxgram.outputs import OUTPUT_FILES, save_npy, write_outputs
from jaxgram.toy import TOY_CONFIG, toy_sentences
from jaxgram.training import train


@pytest.fixture(scope="module")
def toy_result():
    return train(toy_sentences(), dataclasses.replace(TOY_CONFIG, epochs=1), progress=False)


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_checksum_record_is_what_sha256sum_checks(toy_result, tmp_path):
    write_outputs(tmp_path, toy_result)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*OUTPUT_FILES, SHA256SUMS])
    assert subprocess.run(["sha256sum", "--check", "--quiet", SHA256SUMS], cwd=tmp_path).returncode == 0
    with open(tmp_path / "vectors.txt", "a", encoding="utf-8") as handle:
        handle.write(" ")
    assert subprocess.run(["sha256sum", "--check", "--quiet", SHA256SUMS], cwd=tmp_path,
                          capture_output=True).returncode != 0


def test_rewriting_outputs_replaces_the_record(toy_result, tmp_path):
    write_outputs(tmp_path, toy_result)
    (tmp_path / "E.npy").write_bytes(b"stale")
    write_outputs(tmp_path, toy_result)
    np.testing.assert_array_equal(np.load(tmp_path / "E.npy"), np.asarray(toy_result.params.E))
    for name in OUTPUT_FILES:
        assert recorded_sha256(tmp_path / name) == sha256_file(tmp_path / name), name


def test_save_npy_refuses_object_arrays_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        save_npy(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []
