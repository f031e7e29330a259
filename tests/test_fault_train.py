"""Fault suite, training: kill -9 and --resume, damaged checkpoints and vectors, divergence.

Every scenario runs the real `python -m jaxgram` in a child process and damages real files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from resealed_checkpoint import reseal

from jaxgram import checkpoint, fused
from jaxgram.fileio import sha256_file

pytestmark = pytest.mark.fault

# An epoch of this corpus takes about a second, so a kill can land inside one.
# One worker: with more, the fused kernel's threads race on shared rows as gensim's do, and a run
# reproduces itself only statistically (gensim's rule as well).
TRAIN_ARGS = ["--dim", "32", "--epochs", "3", "--min-count", "1", "--seed", "7", "--workers", "1", "--no-progress",
              "--save", "bin,txt,npy"]


def jaxgram_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jaxgram", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    stdout, stderr = child.communicate(timeout=timeout)
    return child.returncode, stdout, stderr


def assert_one_line_error(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def corpus(zipf_corpus) -> Path:
    return zipf_corpus


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory) -> dict[str, Path]:
    """An uninterrupted run, and a run killed with SIGKILL in epoch 2 then resumed, same seed.

    The kill is placed on an event, not a delay: the moment epoch 1's checkpoint is committed the
    child is frozen (SIGSTOP), so however fast the machine, it is stopped after epoch 1 and before
    epoch 2's checkpoint, and then killed. Both runs go at once (the uninterrupted one is only a
    reference).
    """
    root = tmp_path_factory.mktemp("train-runs")
    whole, cut = root / "whole", root / "cut"
    reference = jaxgram_cli("train", "--corpus", str(corpus), "--out", str(whole), *TRAIN_ARGS)
    killed = jaxgram_cli("train", "--corpus", str(corpus), "--out", str(cut), *TRAIN_ARGS)
    manifest = cut / "checkpoint" / checkpoint.MANIFEST
    try:
        deadline = time.monotonic() + 120
        while not manifest.exists():
            assert killed.poll() is None, killed.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.005)
        killed.send_signal(signal.SIGSTOP)  # frozen in epoch 2: its checkpoint cannot come now
        killed.send_signal(signal.SIGKILL)
        assert finish(killed)[0] == -signal.SIGKILL
        # The kill must have landed inside epoch 2: epoch 1's checkpoint is still the committed one.
        assert json.loads(manifest.read_text())["epochs_done"] == 1, "epoch 2 ended between its start and the SIGSTOP"
        assert not (cut / "vectors.bin").exists()
        status, _, stderr = finish(jaxgram_cli("train", "--corpus", str(corpus), "--out", str(cut), "--resume",
                                               *TRAIN_ARGS))
        assert status == 0, stderr
        status, _, stderr = finish(reference)
        assert status == 0, stderr
    finally:
        for child in (reference, killed):
            if child.poll() is None:
                child.kill()
                child.communicate()
    return {"whole": whole, "cut": cut}


def test_kill_9_mid_epoch_then_resume_gives_bitwise_identical_vectors(runs):
    """kill -9 in epoch 2, then `--resume`: the same vectors, tables and losses as an uninterrupted run."""
    whole, cut = runs["whole"], runs["cut"]
    for name in ("vectors.bin", "vectors.txt", "vocab.tsv"):
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
    for name in ("E.npy", "W.npy"):
        np.testing.assert_array_equal(np.load(cut / name, allow_pickle=False), np.load(whole / name, allow_pickle=False))
    losses = [json.loads((run / "loss.json").read_text())["loss_per_epoch"] for run in (whole, cut)]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    assert not list(cut.rglob(".tmp-*"))


@pytest.fixture
def damaged_run(runs, tmp_path) -> Path:
    """A copy of the finished run, free to damage."""
    return Path(shutil.copytree(runs["whole"], tmp_path / "run"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_byte(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


def test_truncated_checkpoint_is_refused_by_resume_naming_the_file(damaged_run, corpus):
    """A truncated checkpoint array file: `train --resume` exits 2 with one line naming it; outputs untouched."""
    arrays = damaged_run / "checkpoint" / "epoch-3.npz"
    _truncate(arrays)
    before = {p: p.read_bytes() for p in damaged_run.rglob("*") if p.is_file()}
    status, _, stderr = finish(jaxgram_cli("train", "--corpus", str(corpus), "--out", str(damaged_run), "--resume",
                                           *TRAIN_ARGS))
    assert status == 2
    assert_one_line_error(stderr, str(arrays), "sha256")
    assert {p: p.read_bytes() for p in damaged_run.rglob("*") if p.is_file()} == before


def _edit_epochs_done(path: Path) -> None:
    """A valid JSON manifest that claims one epoch less: only a checksum over the manifest can tell."""
    meta = json.loads(path.read_text())
    meta["epochs_done"] -= 1
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("victim, damage", [
    ("epoch-3.npz", _flip_byte), ("epoch-3.npz", _truncate),
    (checkpoint.MANIFEST, _truncate), (checkpoint.MANIFEST, _edit_epochs_done),
])
def test_altered_checkpoint_arrays_or_manifest_are_refused(damaged_run, victim, damage):
    """One flipped bit, a cut, or an edited value anywhere in the checkpoint is refused naming the file."""
    from jaxgram.errors import DataError

    folder = damaged_run / "checkpoint"
    damage(folder / victim)
    with pytest.raises(DataError, match=re.escape(str(folder / victim))):
        checkpoint.load(folder)


def _alter_a_value(path: Path) -> None:
    """Change the first number of the first row so the file still parses: only a checksum can tell."""
    data = bytearray(path.read_bytes())
    value = data.index(b" ", data.index(b"\n") + 1) + 1  # words hold no spaces
    if path.suffix == ".bin":
        data[value + 1] ^= 0x01  # a low mantissa bit of the first float
    else:
        digit = next(i for i in range(value, len(data)) if data[i:i + 1].isdigit())
        data[digit] = ord("1") if data[digit] != ord("1") else ord("2")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name, damage", [("vectors.bin", _truncate), ("vectors.txt", _truncate),
                                          ("vectors.bin", _alter_a_value), ("vectors.txt", _alter_a_value)])
def test_damaged_vectors_file_is_refused_by_neighbors(damaged_run, name, damage):
    """A truncated or altered vectors file: `jaxgram neighbors` exits 2 with one line naming the file."""
    vectors = damaged_run / name
    damage(vectors)
    child = jaxgram_cli("neighbors", "w5", "--vectors", str(vectors))
    status, stdout, stderr = finish(child)
    assert status == 2 and stdout == ""
    assert_one_line_error(stderr, str(vectors))


def test_intact_vectors_still_load(runs):
    child = jaxgram_cli("neighbors", "w5", "--topn", "3", "--vectors", str(runs["whole"] / "vectors.bin"))
    status, stdout, stderr = finish(child)
    assert status == 0, stderr
    assert len(stdout.splitlines()) == 3


def test_huge_alpha_stops_in_epoch_1_with_advice_and_no_outputs(corpus, tmp_path):
    """alpha=1e30 makes the loss NaN/inf: exit 3, one line naming epoch 1 and suggesting a lower alpha, no vectors."""
    out = tmp_path / "run"
    status, _, stderr = finish(jaxgram_cli("train", "--corpus", str(corpus), "--out", str(out), *TRAIN_ARGS,
                                           "--alpha", "1e30", "--min-alpha", "0", "--init", "glorot"))
    assert status == 3
    assert_one_line_error(stderr, "epoch 1", "lower alpha")
    assert not (out / "vectors.bin").exists() and not (out / "E.npy").exists()
    assert not checkpoint.exists(out / "checkpoint")  # a diverged epoch is never checkpointed


def test_divergence_in_a_later_epoch_keeps_the_last_good_checkpoint(runs, corpus, tmp_path):
    """Epoch 2 diverges (its start state blown up as a too-large step would): exit 3 naming epoch 2, and the
    epoch-1 checkpoint stays byte-identical, loads and matches its sha256."""
    out = tmp_path / "run"
    shutil.copytree(runs["cut"], out)
    folder = out / "checkpoint"
    # Rewind the resumed run's checkpoint to epoch 1 and blow E up, then commit it with a valid checksum.
    saved = checkpoint.load(folder)
    saved.arrays["E"] = saved.arrays["E"] * np.float32(1e30)
    meta = {**{k: v for k, v in saved.meta.items() if k not in ("arrays_file", "arrays_sha256")},
            "epochs_done": 1, "loss_per_epoch": saved.meta["loss_per_epoch"][:1],
            "pairs_per_epoch": saved.meta["pairs_per_epoch"][:1]}
    checkpoint.save(folder, saved.arrays, meta)
    for name in ("vectors.bin", "E.npy"):
        (out / name).unlink()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    status, _, stderr = finish(jaxgram_cli("train", "--corpus", str(corpus), "--out", str(out), "--resume",
                                           *TRAIN_ARGS))
    assert status == 3
    assert_one_line_error(stderr, "epoch 2", "lower alpha", str(folder))
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    manifest = json.loads((folder / checkpoint.MANIFEST).read_text())
    assert sha256_file(folder / manifest["arrays_file"]) == manifest["arrays_sha256"]
    assert checkpoint.load(folder).meta["epochs_done"] == 1
    assert not (out / "vectors.bin").exists() and not (out / "E.npy").exists()


# -- SIGTERM at any moment -----------------------------------------------------------------------------

# Sixty-four workers on this corpus: start-up and each call take a while, and an epoch a few seconds.
SIGTERM_ARGS = ["--dim", "32", "--epochs", "50", "--min-count", "1", "--workers", "64", "--no-progress"]


def _wait_for_library(child: subprocess.Popen, name: str, timeout: float = 60) -> None:
    """Return once the child has mapped a shared library whose path contains `name` (Linux's /proc)."""
    maps = Path(f"/proc/{child.pid}/maps")
    deadline = time.monotonic() + timeout
    while name not in maps.read_text():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, f"{name} not loaded after {timeout} s"
        time.sleep(0.002)


def _wait_for_checkpoint(child: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (out / "checkpoint" / checkpoint.MANIFEST).exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, f"no checkpoint after {timeout} s"
        time.sleep(0.01)


# When SIGTERM is sent: Python's start-up; jaxlib's C++ extension initialising (a KeyboardInterrupt
# inside it aborted the process or failed the import with a traceback); the rest of JAX's start-up
# (backend, thread pools; a KeyboardInterrupt in JAX's gc callback was once ignored and training
# went on); the fused kernel just loaded (the first compile); mid-training, inside a long call.
MOMENTS = {
    "at-once": lambda child, out: None,
    "python-start": lambda child, out: time.sleep(0.1),
    "jaxlib-init": lambda child, out: _wait_for_library(child, "jaxlib/libjax_common"),
    "jax-start": lambda child, out: (_wait_for_library(child, "jaxlib/libjax_common"), time.sleep(0.3)),
    "jax-started": lambda child, out: (_wait_for_library(child, "jaxlib/libjax_common"), time.sleep(0.8)),
    "first-compile": lambda child, out: _wait_for_library(child, "_ns_sgd"),
    "mid-training": _wait_for_checkpoint,
}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc to see what the child loaded")
@pytest.mark.parametrize("moment", MOMENTS)
def test_sigterm_at_any_moment_stops_train_within_seconds_in_one_line(corpus, tmp_path, moment):
    """SIGTERM stops `jaxgram train` within 10 s whenever it comes: exit 130 and one line, or, before
    the CLI has taken SIGTERM over (Python still starting), the default: killed by it, silently."""
    out = tmp_path / "run"
    child = jaxgram_cli("train", "--corpus", str(corpus), "--out", str(out), *SIGTERM_ARGS)
    try:
        MOMENTS[moment](child, out)
        sent = time.monotonic()
        child.send_signal(signal.SIGTERM)
        status, _, stderr = finish(child, timeout=60)
        took = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert status in (130, -signal.SIGTERM), stderr
    if status == 130:
        assert_one_line_error(stderr, "jaxgram train: interrupted")
    else:
        assert stderr == ""
    assert took < 10, f"exited {took:.1f} s after SIGTERM"
    assert not (out / "vectors.bin").exists()


# -- a checkpoint is untrusted input (issue 28) --------------------------------------------------------

# A tiny run: a few seconds a command, most of it starting Python and JAX.
SMALL_ARGS = ["--dim", "8", "--epochs", "2", "--min-count", "1", "--seed", "7", "--workers", "1", "--no-progress"]
# The address space a child reading hostile input may take: JAX starts in well under it, and the
# endless read of /dev/zero that a manifest once caused (21 GB in 76 s) stops at it with an error
# instead of taking the machine's memory. The child sets it on itself before it runs the CLI, so this
# process (JAX's threads running) never has to run Python code between fork and exec.
CHILD_ADDRESS_SPACE = 4 << 30
_CAPPED_CLI = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]),) * 2); "
               "sys.argv = ['jaxgram', *sys.argv[2:]]; runpy.run_module('jaxgram', run_name='__main__', alter_sys=True)")


def _limited_cli(*args: str) -> subprocess.Popen:
    """jaxgram_cli with the child's address space capped at CHILD_ADDRESS_SPACE."""
    return subprocess.Popen([sys.executable, "-c", _CAPPED_CLI, str(CHILD_ADDRESS_SPACE), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _train(corpus: Path, out: Path, *extra: str, timeout: float = 60) -> tuple[int, str, str]:
    """`jaxgram train` of the small run into `out`, capped (_limited_cli); (status, stdout, stderr)."""
    child = _limited_cli("train", "--corpus", str(corpus), "--out", str(out), *SMALL_ARGS, *extra)
    try:
        return finish(child, timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


@pytest.fixture(scope="module")
def small_run(synthetic_corpus, tmp_path_factory) -> tuple[Path, Path]:
    """(corpus, finished run): the small synthetic corpus, trained 2 epochs."""
    run = tmp_path_factory.mktemp("small-run") / "run"
    status, _, stderr = _train(synthetic_corpus, run)
    assert status == 0, stderr
    return synthetic_corpus, run


@pytest.fixture
def small_copy(small_run, tmp_path) -> Path:
    """A copy of the small finished run, in tmp_path/run, free to damage."""
    return Path(shutil.copytree(small_run[1], tmp_path / "run"))


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file of the user's outside the run folder, next to it."""
    path = tmp_path / "victim.txt"
    path.write_text("the user's own file\n")
    return path


@pytest.mark.parametrize("named", ["../../victim.txt", "{victim}"])
def test_a_manifest_naming_a_file_outside_the_run_never_touches_it(small_run, small_copy, victim, named):
    """arrays_file pointing outside --out (relative or absolute), resealed: `--resume` refuses it in one line;
    a fresh `train` into the folder replaces the checkpoint. The file outside is never read or removed."""
    folder = small_copy / "checkpoint"
    reseal(folder, arrays_file=named.format(victim=victim))
    before = (victim.read_bytes(), victim.stat().st_mtime_ns)
    status, _, stderr = _train(small_run[0], small_copy, "--resume")
    assert status == 2
    assert_one_line_error(stderr, "arrays_file=", "only epoch-2.npz")
    status, _, stderr = _train(small_run[0], small_copy)
    assert status == 0, stderr
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before
    assert checkpoint.load(folder).meta["epochs_done"] == 2


def _symlink_to_a_copy_outside(folder: Path) -> None:
    """epoch-2.npz moved outside the run, a symlink left in its place: every checksum still holds."""
    outside = folder.parent.parent / "outside.npz"
    (folder / "epoch-2.npz").rename(outside)
    (folder / "epoch-2.npz").symlink_to(outside)


def _symlink_to_dev_zero(folder: Path) -> None:
    (folder / "epoch-2.npz").unlink()
    (folder / "epoch-2.npz").symlink_to("/dev/zero")


def _sparse_terabyte(folder: Path) -> None:
    os.truncate(folder / "epoch-2.npz", 1 << 40)  # takes no disk


@pytest.mark.parametrize("damage, refusal", [
    (_symlink_to_a_copy_outside, "epoch-2.npz is a symlink"),
    (_symlink_to_dev_zero, "epoch-2.npz is a symlink"),
    (lambda folder: reseal(folder, arrays_file="/dev/zero"), 'arrays_file="/dev/zero", which is not allowed'),
    (_sparse_terabyte, "epoch-2.npz is 1,099,511,627,776 bytes, more than the"),
    (lambda folder: reseal(folder, epochs_done="2"), 'epochs_done="2", which is not allowed: an integer >= 0'),
])
def test_a_hostile_checkpoint_is_refused_by_resume_in_one_line_and_seconds(small_run, small_copy, damage, refusal):
    """A checkpoint file that leads outside --out or to a device, one larger than the run's tables, a field of
    the wrong type: `--resume` exits 2 with one line, in seconds, inside a capped address space."""
    damage(small_copy / "checkpoint")
    started = time.monotonic()
    status, _, stderr = _train(small_run[0], small_copy, "--resume")
    assert status == 2
    assert_one_line_error(stderr, refusal)
    assert time.monotonic() - started < 30


def test_resume_while_another_run_holds_the_folder_names_that_run(small_run, tmp_path):
    """Before the other run's first checkpoint, `--resume` says the folder is in use, not that it has none."""
    from jaxgram import rundir

    with rundir.claim(tmp_path / "busy"):
        status, _, stderr = _train(small_run[0], tmp_path / "busy", "--resume")
    assert status == 2
    assert_one_line_error(stderr, f"is in use by another jaxgram train (pid {os.getpid()})")


def test_a_fresh_run_that_diverges_does_not_call_an_older_checkpoint_its_own(small_run, small_copy):
    """A new run (no --resume) into a finished run's folder diverges in epoch 1: it saved nothing, so the message
    calls the checkpoint there the earlier run's, and that checkpoint is byte-identical."""
    folder = small_copy / "checkpoint"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    status, _, stderr = _train(small_run[0], small_copy, "--alpha", "1e30", "--min-alpha", "0", "--init", "glorot")
    assert status == 3
    assert_one_line_error(stderr, "epoch 1", f"the checkpoint in {folder} is an earlier run's, left as it was")
    assert "last good" not in stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.skipif(not fused.available(), reason="the fused kernel is not built here")
def test_resume_names_the_kernel_an_auto_run_ran(small_run, small_copy):
    """The small run's kernel "auto" ran fused: `--resume --kernel xla` is refused naming that, and
    `--resume --kernel fused` continues it."""
    status, _, stderr = _train(small_run[0], small_copy, "--resume", "--kernel", "xla", "--epochs", "3")
    assert status == 2
    assert_one_line_error(stderr, "kernel='xla' (checkpoint: 'auto', which ran 'fused')")
    status, stdout, stderr = _train(small_run[0], small_copy, "--resume", "--kernel", "fused", "--epochs", "3")
    assert status == 0, stderr
    assert stdout.startswith("trained ") and " 3 epochs, " in stdout
    assert len(json.loads((small_copy / "loss.json").read_text())["loss_per_epoch"]) == 3


def test_resuming_a_finished_run_says_there_is_nothing_to_train(small_run, small_copy):
    status, stdout, stderr = _train(small_run[0], small_copy, "--resume")
    assert status == 0 and stderr == ""
    assert stdout.splitlines() == [stdout.strip()]
    assert stdout.startswith(f"nothing to train: the run in {small_copy} was already complete (2 epochs, final loss ")
    assert "words/s" not in stdout
