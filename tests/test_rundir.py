"""The output folder a run owns (jaxgram/rundir.py) and SIGTERM in the CLI.

Three parts:
- rundir on real files, with real second processes holding (and losing, to kill -9) the lock;
- `cli.main` with SIGTERM, in a child process running a stand-in command that does what
  `train()` does with rundir (claim the folder, fill a scratch folder, work) but trains nothing;
- CLI probes (`test_cli_probe_*`, fault suite): the real `python -m jaxgram train` as a user
  runs it, SIGTERM, kill -9 and two runs at once included.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jaxgram import cli, rundir
from jaxgram.errors import DataError

REPO = Path(__file__).resolve().parents[1]

# A stand-in `jaxgram train` run through the real cli.main: claims --out, fills the scratch
# folder, prints that folder (the parent's cue that it is under way) and waits to be stopped.
STAND_IN = textwrap.dedent("""
    import sys, time
    from jaxgram import rundir
    sys.path.insert(0, "tests")  # the child runs in the checkout
    from stand_in_cli import run

    def hold(args):
        with rundir.claim(args.out), rundir.scratch_folder(args.out) as scratch:
            (scratch / "corpus.npy").write_bytes(b"encoded")
            print(scratch, flush=True)
            time.sleep(120)
        return 0

    run("train", hold, "--out", sys.argv[1:])
""")

# A run caught mid-write: holds the folder argv[1] as a run does, with the atomic writer's temporaries of the
# files argv[2:] open in it (as a kill -9 during a checkpoint leaves them); prints the folder and waits.
WRITER = textwrap.dedent("""
    import contextlib, sys, time
    from pathlib import Path
    from jaxgram import rundir
    from jaxgram.fileio import atomic_open

    out = Path(sys.argv[1])
    with rundir.claim(out), contextlib.ExitStack() as files:
        for name in sys.argv[2:]:
            files.enter_context(atomic_open(out / name)).write(b"half a file")
        print(out, flush=True)
        time.sleep(120)
""")


def child_env(tmpdir: Path) -> dict[str, str]:
    """The environment of a child whose TMPDIR is private to the test."""
    tmpdir.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(REPO)}


def start_stand_in(tmpdir: Path, out: Path | None = None) -> tuple[subprocess.Popen, Path]:
    """A running stand-in and its scratch folder (once it has claimed the folder and filled the scratch)."""
    return start_child(STAND_IN, tmpdir, "train", *(["--out", str(out)] if out is not None else []))


def start_child(script: str, tmpdir: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """A running `python -c script args` and the path it printed as its cue that it is under way."""
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env(tmpdir), cwd=REPO)
    line = child.stdout.readline()
    if not line:
        child.kill()
        pytest.fail(f"the child never got going: {child.communicate()}")
    return child, Path(line.strip())


def stop(child: subprocess.Popen, sig: int) -> tuple[int, str]:
    """Send `sig`, wait for the child; its exit status and stderr."""
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=60)
    return child.returncode, stderr


@pytest.fixture
def tmpdir_private(tmp_path, monkeypatch) -> Path:
    """TMPDIR for this process, private to the test (tempfile caches it, so set both)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


# -- check_output_folder -------------------------------------------------------------------------


def test_check_output_folder_makes_missing_folders_and_accepts_existing_ones(tmp_path):
    out = tmp_path / "a" / "b"
    assert rundir.check_output_folder(out) == out and out.is_dir()
    assert rundir.check_output_folder(str(out)) == out


def test_check_output_folder_refuses_a_file_naming_it_and_leaves_it_unchanged(tmp_path):
    path = tmp_path / "vectors"
    path.write_bytes(b"not a folder")
    with pytest.raises(DataError, match=f"{path} is not a folder"):
        rundir.check_output_folder(path)
    assert path.read_bytes() == b"not a folder"
    with pytest.raises(DataError, match=f"cannot create the output folder {path / 'run'}"):
        rundir.check_output_folder(path / "run")  # under a file
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is not a folder"):
        rundir.check_output_folder(dangling)


# -- claim -----------------------------------------------------------------------------------------


def test_claim_holds_the_folder_for_the_run_and_then_lets_go(tmp_path):
    out = tmp_path / "run"
    with rundir.claim(out) as folder:
        assert folder == out and out.is_dir()
        assert (out / rundir.LOCK_NAME).read_text().split()[0] == str(os.getpid())
        busy = f"{out} is in use by another jaxgram train \\(pid {os.getpid()}\\)"
        with pytest.raises(DataError, match=busy), rundir.claim(out):  # conflicts even in the same process
            pass
        (out / "vectors.bin").write_bytes(b"v")
    assert sorted(p.name for p in out.iterdir()) == ["vectors.bin"]  # no lock file left
    with rundir.claim(out):
        pass


def test_claim_lets_go_when_the_run_fails_and_leaves_no_folder_it_made_empty(tmp_path):
    out = tmp_path / "runs" / "run"
    with pytest.raises(RuntimeError), rundir.claim(out):
        raise RuntimeError("training failed")
    assert list(tmp_path.iterdir()) == []  # `runs` too: the claim made it
    with rundir.claim(out):  # not stuck
        pass
    with rundir.claim(None) as folder:
        assert folder is None


def test_claim_refuses_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("keep me")
    with pytest.raises(DataError, match=str(path)), rundir.claim(path):
        pass
    assert path.read_text() == "keep me"


def test_a_folder_held_by_another_process_is_refused_until_kill_9_frees_it(tmp_path):
    """A real second process holds the folder: refused, naming the folder and its pid; SIGKILL releases it,
    and the next claim replaces the scratch folder the killed run left."""
    out = tmp_path / "run"
    holder, scratch = start_stand_in(tmp_path / "tmp", out)
    try:
        assert scratch == out / rundir.SCRATCH_NAME and (scratch / "corpus.npy").exists()
        busy = f"{out} is in use by another jaxgram train \\(pid {holder.pid}\\)"
        with pytest.raises(DataError, match=busy), rundir.claim(out):
            pass
        assert stop(holder, signal.SIGKILL)[0] == -signal.SIGKILL
    finally:
        holder.kill()
        holder.communicate()
    assert (scratch / "corpus.npy").exists()  # kill -9 runs no cleanup
    with rundir.claim(out), rundir.scratch_folder(out) as fresh:
        assert fresh == scratch and list(fresh.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_refusal_names_the_command_holding_the_folder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with rundir.claim(out, "jaxgram pipeline"):
        busy = f"{out} is in use by another jaxgram pipeline \\(pid {os.getpid()}\\)"
        with pytest.raises(DataError, match=busy), rundir.claim(out):
            pass
    # A lock file of a release before the pipeline took locks names no command: only train held folders then.
    fd = os.open(out / rundir.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"4242 {socket.gethostname()}\n".encode())
        with pytest.raises(DataError, match="in use by another jaxgram train \\(pid 4242\\)"), rundir.claim(out):
            pass
    finally:
        os.close(fd)


@pytest.mark.fault
def test_claim_removes_the_temporaries_a_killed_run_left_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    killed, _ = start_child(WRITER, tmp_path / "tmp", str(out), "vectors.bin", "checkpoint/epoch-1.npz")
    assert stop(killed, signal.SIGKILL)[0] == -signal.SIGKILL
    left = sorted(out.rglob(".tmp-*"))
    assert [(p.parent, p.name.rsplit(".", 1)[0]) for p in left] == [
        (out, ".tmp-vectors.bin"), (out / "checkpoint", ".tmp-epoch-1.npz")]
    # Not the atomic writer's, in a hidden folder, outside the folder, or a link: none of these is removed.
    kept = [out / ".tmp-notes.txt", out / ".git" / ".tmp-index.abcd1234", tmp_path / ".tmp-vectors.bin.abcd1234"]
    (out / ".git").mkdir()
    for path in kept:
        path.write_text("keep")
    (out / ".tmp-link.abcd1234").symlink_to(kept[-1])
    with rundir.claim(out):
        assert not any(path.exists() for path in left)
        assert all(path.read_text() == "keep" for path in kept) and (out / ".tmp-link.abcd1234").is_symlink()


@pytest.mark.fault
def test_a_live_runs_temporaries_are_its_own_until_it_is_gone(tmp_path):
    """A run holds out/jaxgram (as a pipeline's trainer does) with a temporary open: claiming `out` leaves it, and
    claiming out/jaxgram is refused; once that run is killed, the next claim of out/jaxgram removes it."""
    out = tmp_path / "run"
    live, trainer_folder = start_child(WRITER, tmp_path / "tmp", str(out / "jaxgram"), "vectors.bin")
    try:
        [temporary] = trainer_folder.glob(".tmp-vectors.bin.*")
        with rundir.claim(out):
            assert temporary.exists()
        with pytest.raises(DataError, match=f"pid {live.pid}"), rundir.claim(trainer_folder):
            pass
        assert temporary.exists()
        assert stop(live, signal.SIGKILL)[0] == -signal.SIGKILL
    finally:
        live.kill()
        live.communicate()
    with rundir.claim(trainer_folder):
        assert not temporary.exists()


def test_clear_empties_a_folder_only_while_holding_it(tmp_path):
    out = tmp_path / "run"
    holder, scratch = start_stand_in(tmp_path / "tmp", out)
    try:
        (out / "vectors.bin").write_bytes(b"the run's")
        with pytest.raises(DataError, match=f"{out} is in use by another jaxgram train \\(pid {holder.pid}\\)"):
            rundir.clear(out, "jaxgram pipeline")
        assert (out / "vectors.bin").read_bytes() == b"the run's" and (scratch / "corpus.npy").exists()
        assert stop(holder, signal.SIGKILL)[0] == -signal.SIGKILL
    finally:
        holder.kill()
        holder.communicate()
    rundir.clear(out, "jaxgram pipeline")
    assert out.is_dir() and list(out.iterdir()) == []  # the stale lock file too
    rundir.clear(tmp_path / "new", "jaxgram pipeline")
    assert not (tmp_path / "new").exists()


# -- scratch_folder ------------------------------------------------------------------------------


def test_scratch_in_the_output_folder_replaces_leftovers_and_is_removed_however_the_run_ends(tmp_path):
    out = tmp_path / "run"
    (out / rundir.SCRATCH_NAME / "old").mkdir(parents=True)
    (out / rundir.SCRATCH_NAME / "old" / "corpus.npy").write_bytes(b"old")
    with rundir.scratch_folder(out) as scratch:
        assert scratch == out / rundir.SCRATCH_NAME and list(scratch.iterdir()) == []
        (scratch / "corpus.npy").write_bytes(b"new")
    assert not scratch.exists()
    with pytest.raises(KeyboardInterrupt), rundir.scratch_folder(out) as scratch:
        (scratch / "corpus.npy").write_bytes(b"new")
        raise KeyboardInterrupt
    assert not scratch.exists()
    (out / rundir.SCRATCH_NAME).write_text("a file in the way")
    with rundir.scratch_folder(out) as scratch:
        assert scratch.is_dir()


def test_scratch_in_tmpdir_names_its_pid_and_is_removed_afterwards(tmpdir_private):
    with rundir.scratch_folder(None) as scratch:
        assert scratch.parent == tmpdir_private
        assert scratch.name.startswith(f"{rundir.TMP_PREFIX}{os.getpid()}-")
        (scratch / "corpus.npy").write_bytes(b"x")
        assert rundir.remove_stale_scratch() == []  # its own run is alive
    assert list(tmpdir_private.iterdir()) == []


def test_stale_tmpdir_scratch_of_a_killed_run_is_removed_by_the_next_run_a_live_one_is_kept(tmp_path,
                                                                                           tmpdir_private):
    killed, killed_scratch = start_stand_in(tmpdir_private)
    live, live_scratch = start_stand_in(tmpdir_private)
    old_style = tmpdir_private / "jaxgram-encoded-k2j4_x9q"  # an older release's: whose run, no one can tell
    old_style.mkdir()
    try:
        assert killed_scratch.name.startswith(f"{rundir.TMP_PREFIX}{killed.pid}-")
        assert stop(killed, signal.SIGKILL)[0] == -signal.SIGKILL
        assert killed_scratch.exists()
        with rundir.scratch_folder(None) as scratch:
            assert not killed_scratch.exists()
            assert live_scratch.exists() and (live_scratch / "corpus.npy").exists() and old_style.exists()
            assert sorted(tmpdir_private.iterdir()) == sorted([scratch, live_scratch, old_style])
    finally:
        for child in (killed, live):
            child.kill()
            child.communicate()
    assert rundir.remove_stale_scratch() == [live_scratch]  # now that its run is gone too


def test_a_scratch_folder_whose_lock_file_was_removed_falls_back_to_its_pid(tmpdir_private):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead = tmpdir_private / f"{rundir.TMP_PREFIX}{int(gone.stdout)}-abc"
    alive = tmpdir_private / f"{rundir.TMP_PREFIX}{os.getpid()}-abc"
    for folder in (dead, alive):
        folder.mkdir()
    assert rundir.remove_stale_scratch(tmpdir_private) == [dead]
    assert alive.exists()


# -- SIGTERM in cli.main ---------------------------------------------------------------------------


def test_importing_rundir_and_cli_neither_loads_jax_nor_touches_sigterm():
    code = ("import signal, sys; import jaxgram.cli, jaxgram.rundir; "
            "assert 'jax' not in sys.modules; assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr


def test_main_handles_sigterm_only_while_the_command_runs(monkeypatch):
    import argparse

    seen = []

    def build_parser():
        parser = argparse.ArgumentParser(prog="jaxgram")
        command = parser.add_subparsers(dest="command", required=True).add_parser("probe")
        command.set_defaults(func=lambda args: seen.append(signal.getsignal(signal.SIGTERM)))
        return parser

    def mine(signum, frame):
        pass

    monkeypatch.setattr(cli, "build_parser", build_parser)
    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert cli.main(["probe"]) == 0
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.default_int_handler]


@pytest.mark.parametrize("with_out", [True, False], ids=["out", "no-out"])
def test_sigterm_stops_a_command_like_ctrl_c_and_cleans_up(tmp_path, with_out):
    """SIGTERM: exit 130, one line 'interrupted', no traceback; scratch and lock gone, the folder's files kept."""
    out = tmp_path / "run" if with_out else None
    if out is not None:
        out.mkdir()
        (out / "checkpoint").mkdir()
    child, scratch = start_stand_in(tmp_path / "tmp", out)
    try:
        status, stderr = stop(child, signal.SIGTERM)
    finally:
        child.kill()
        child.communicate()
    assert status == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["jaxgram train: interrupted"]
    assert not scratch.exists() and list((tmp_path / "tmp").iterdir()) == []
    if out is not None:
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint"]


# -- CLI probes: the real `jaxgram train` (fail until train() uses rundir, except the SIGTERM one) ----

TRAIN_ARGS = ["--dim", "32", "--min-count", "1", "--seed", "7", "--no-progress"]


@pytest.fixture(scope="module")
def corpus(zipf_corpus) -> Path:
    return zipf_corpus


def jaxgram_train(corpus: Path, out: Path, tmpdir: Path, *extra: str, epochs: int = 3) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jaxgram", "train", "--corpus", str(corpus), "--out", str(out),
                             "--epochs", str(epochs), *TRAIN_ARGS, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(tmpdir), cwd=REPO)


def epochs_done(out: Path) -> int:
    try:
        return json.loads((out / "checkpoint" / "checkpoint.json").read_text())["epochs_done"]
    except (OSError, ValueError, KeyError):
        return 0


def wait_for_checkpoint(child: subprocess.Popen, out: Path, after: int = 0, timeout: float = 180) -> int:
    """Wait until `out` holds a checkpoint of more than `after` epochs (the child still running); its epochs."""
    deadline = time.monotonic() + timeout
    while (done := epochs_done(out)) <= after:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, f"no checkpoint past epoch {after} after {timeout} s"
        time.sleep(0.02)
    return done


def scratch_folders(out: Path, tmpdir: Path) -> list[Path]:
    """Every scratch folder a run may leave: in the output folder, or in TMPDIR."""
    return sorted(tmpdir.glob("*jaxgram*")) + [p for p in [out / rundir.SCRATCH_NAME] if p.exists()]


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def jaxgram_pipeline(corpus: Path, out: Path, tmpdir: Path) -> subprocess.CompletedProcess:
    """`jaxgram pipeline` on `corpus` (no ingest) with a small config, run to its end."""
    config = tmpdir / "small.toml"
    config.write_text("[train]\ndim = 16\nepochs = 1\n")
    return subprocess.run([sys.executable, "-m", "jaxgram", "pipeline", "--corpus", str(corpus), "--config", str(config),
                           "--out", str(out), "--no-progress"], capture_output=True, text=True, env=child_env(tmpdir),
                          cwd=REPO, timeout=300)


def error_line(stderr: str) -> str:
    """The one error line a command ended with, after its progress lines; no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert [line for line in lines if ": error: " in line] == lines[-1:], stderr
    return lines[-1]


@pytest.mark.fault
def test_cli_probe_out_an_existing_file_is_one_line_exit_2(corpus, tmp_path):
    path = tmp_path / "vectors"
    path.write_bytes(b"someone's file")
    child = jaxgram_train(corpus, path, tmp_path / "tmp")
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 2, stderr
    line = one_line(stderr)
    assert line.startswith("jaxgram train: error: ") and str(path) in line
    assert path.read_bytes() == b"someone's file"
    assert scratch_folders(path, tmp_path / "tmp") == []


@pytest.mark.fault
def test_cli_probe_sigterm_mid_training_keeps_the_checkpoint_and_leaves_no_scratch(corpus, tmp_path):
    from jaxgram import checkpoint

    out, tmpdir = tmp_path / "run", tmp_path / "tmp"
    child = jaxgram_train(corpus, out, tmpdir)
    try:
        wait_for_checkpoint(child, out)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=120)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == 130, stderr
    assert one_line(stderr) == "jaxgram train: interrupted"
    assert 1 <= checkpoint.load(out / "checkpoint").meta["epochs_done"] < 3  # loads: every sha256 checks out
    assert not (out / "vectors.bin").exists()
    assert scratch_folders(out, tmpdir) == []
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"]


@pytest.mark.fault
def test_cli_probe_a_second_run_into_a_busy_folder_is_refused_and_the_first_finishes(corpus, tmp_path):
    out, tmpdir = tmp_path / "run", tmp_path / "tmp"
    # Enough epochs that the first run still trains while the second starts (JAX's start-up
    # alone takes seconds; an epoch of this corpus well under one with the fused kernel).
    epochs = 15
    first = jaxgram_train(corpus, out, tmpdir, epochs=epochs)
    try:
        wait_for_checkpoint(first, out)
        second = jaxgram_train(corpus, out, tmpdir, "--resume", epochs=epochs)
        _, stderr = second.communicate(timeout=300)
        assert second.returncode == 2, stderr
        line = one_line(stderr)
        assert str(out) in line and f"pid {first.pid}" in line, line
        _, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stderr
    finally:
        first.kill()
        first.communicate()
    assert len(json.loads((out / "loss.json").read_text())["loss_per_epoch"]) == epochs
    assert scratch_folders(out, tmpdir) == [] and not (out / rundir.LOCK_NAME).exists()


@pytest.mark.fault
def test_cli_probe_kill_9_leaves_no_stuck_lock_and_at_most_one_scratch_folder(corpus, tmp_path):
    """Two runs killed with SIGKILL mid-training, one after the other into the same folder: never more than one
    scratch folder left; the third run (--resume) is not refused, finishes, and leaves none."""
    out, tmpdir = tmp_path / "run", tmp_path / "tmp"
    done = 0
    for resume in ([], ["--resume"]):
        child = jaxgram_train(corpus, out, tmpdir, *resume, epochs=5)
        try:
            done = wait_for_checkpoint(child, out, after=done)
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=60)
        finally:
            child.kill()
            child.communicate()
        assert child.returncode == -signal.SIGKILL, "the run ended before the kill"
        assert len(scratch_folders(out, tmpdir)) <= 1, scratch_folders(out, tmpdir)
    last = jaxgram_train(corpus, out, tmpdir, "--resume", epochs=5)
    _, stderr = last.communicate(timeout=300)
    assert last.returncode == 0, stderr
    assert (out / "vectors.bin").exists()
    assert scratch_folders(out, tmpdir) == [] and not (out / rundir.LOCK_NAME).exists()


@pytest.mark.fault
def test_cli_probe_a_pipeline_is_refused_the_trainer_folder_a_train_holds_and_the_train_finishes(corpus, tmp_path):
    """`jaxgram train --out OUT/jaxgram` runs while `jaxgram pipeline --out OUT` reaches its jaxgram stage: the
    pipeline is refused in one line naming the train's pid, without removing the folder; the train finishes."""
    out, tmpdir = tmp_path / "run", tmp_path / "tmp"
    trainer_folder = out / "jaxgram"
    epochs = 10  # still training when the pipeline (under a second) gets to the folder
    train = jaxgram_train(corpus, trainer_folder, tmpdir, epochs=epochs)
    try:
        wait_for_checkpoint(train, trainer_folder)
        pipeline = jaxgram_pipeline(corpus, out, tmpdir)
        assert pipeline.returncode == 2, pipeline.stderr
        assert error_line(pipeline.stderr) == (
            f"jaxgram pipeline: error: {trainer_folder} is in use by another jaxgram train (pid {train.pid}); "
            "wait for it to finish or choose another --out")
        _, stderr = train.communicate(timeout=300)
        assert train.returncode == 0, stderr
    finally:
        train.kill()
        train.communicate()
    assert len(json.loads((trainer_folder / "loss.json").read_text())["loss_per_epoch"]) == epochs
    assert (trainer_folder / "vectors.bin").exists() and (out / "stages" / "ingest.json").exists()
    assert not list(out.rglob(rundir.LOCK_NAME))
