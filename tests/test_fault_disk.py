"""Fault suite, disk and memory: a filesystem that fills up mid-run, and a 10-million-token line.

The full filesystem is a real tmpfs mounted by the test (root only: it skips with the
reason elsewhere, and fails under CI=true, which runs as root).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fault_books import book, prose, text_path
from jax._src.compilation_cache import decompress_executable

from jaxgram import checkpoint, rundir
from jaxgram.fileio import sha256_file

pytestmark = pytest.mark.fault

PAGE = 4096
PROGRESS = re.compile(r"^\w+:\s+\d+%\|")
NO_SPACE = "No space left on device"


def run_cli(*args: str, limit_bytes: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m jaxgram ARGS` in a child process, optionally under an address-space limit."""
    code = "import runpy, sys\n"
    if limit_bytes is not None:
        code += f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))\n"
    code += "sys.argv = ['jaxgram', *sys.argv[1:]]\nrunpy.run_module('jaxgram', run_name='__main__')\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, status: int, *needles: str) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    # tqdm's progress bar (ingest's, on stderr) is not part of the message.
    lines = [line for line in result.stderr.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def pages(size: int) -> int:
    return -(-size // PAGE) * PAGE


def usage(folder: Path, exclude=()) -> int:
    """Bytes a tmpfs charges for the files under `folder` (whole pages per file)."""
    return sum(pages(p.stat().st_size) for p in folder.rglob("*") if p.is_file() and p.name not in exclude)


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of `size` bytes; remount(folder, size) grows it. Unmounted afterwards."""
    mounted: list[Path] = []

    def mount_command(*args: str) -> None:
        try:
            result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            result = None
        if result is None or result.returncode != 0:
            reason = "cannot mount a tmpfs: " + (result.stderr.strip() if result else "no mount command")
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"{reason} (CI=true runs as root: this must not be skipped)")
            pytest.skip(reason)

    def mount(size: int) -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        mount_command("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
        mounted.append(folder)
        return folder

    def remount(folder: Path, size: int) -> None:
        mount_command("-o", f"remount,size={size}", str(folder))

    mount.remount = remount
    yield mount
    for folder in reversed(mounted):
        if subprocess.run(["umount", str(folder)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """A local mirror folder with three synthetic books of about 50 kB each."""
    root = tmp_path_factory.mktemp("disk-mirror")
    for book_id in (1, 2, 3):
        path = root / text_path(book_id)
        path.parent.mkdir(parents=True)
        path.write_text(book(book_id, prose(book_id, paragraphs=250)))
    return root


@pytest.fixture(scope="module")
def probe(mirror, tmp_path_factory) -> Path:
    """The same ingest on a roomy disk: what each file should be, and how much space it takes."""
    out = tmp_path_factory.mktemp("disk-probe") / "out"
    result = run_cli("ingest", "--books", "1", "2", "3", "--mirror", str(mirror), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("fills_at", ["downloads", "corpus"])
def test_ingest_on_a_full_disk_fails_clearly_and_leaves_nothing_to_trust(mirror, probe, tmpfs, fills_at):
    """ENOSPC during the downloads or while writing corpus.txt: exit 2 with one line naming the file;
    no manifest, no corpus, no temp file; every file left is complete and verified; the rerun on a
    grown disk produces the same corpus."""
    before_corpus = usage(probe, exclude=("corpus.txt", "manifest.json")) + 2 * PAGE  # index.json is rewritten
    size = {"downloads": usage(probe / "raw" / "1") + 2 * PAGE,
            "corpus": before_corpus + pages((probe / "corpus.txt").stat().st_size) // 2}[fills_at]
    disk = tmpfs(size)
    out = disk / "out"
    argv = ("ingest", "--books", "1", "2", "3", "--mirror", str(mirror), "--out", str(out))
    line = assert_one_line_error(run_cli(*argv), 2, NO_SPACE, str(out))
    if fills_at == "corpus":
        assert "corpus.txt" in line
    assert not (out / "manifest.json").exists() and not (out / "corpus.txt").exists()
    assert not list(out.rglob(".tmp-*"))
    index_path = out / "raw" / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    for entry in index.values():
        assert sha256_file(out / "raw" / entry["file"]) == entry["sha256"]
    listed = {out / "raw" / entry["file"] for entry in index.values()}
    for path in out.rglob("*"):
        if path.is_file() and path != index_path:
            # Whatever exists under its final name is whole: listed raw files, or finished clean files.
            assert path in listed or path.read_bytes() == (probe / path.relative_to(out)).read_bytes(), path

    tmpfs.remount(disk, 4 * 1024 * 1024)
    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    assert (out / "corpus.txt").read_bytes() == (probe / "corpus.txt").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [b["sha256"] for b in manifest["books"]] == [sha256_file(b["raw_path"]) for b in manifest["books"]]


# One worker, so that the resumed run can be compared bitwise (with more, the fused kernel's
# threads race on shared rows as gensim's do).
TRAIN_ARGS = ("--dim", "32", "--epochs", "2", "--min-count", "1", "--seed", "3", "--workers", "1", "--no-progress")


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    words = np.array([f"v{i}" for i in range(2000)])
    ids = rng.integers(0, len(words), size=30_000)
    path = tmp_path_factory.mktemp("disk-corpus") / "corpus.txt"
    path.write_text("".join(" ".join(words[ids[k:k + 12]]) + "\n" for k in range(0, len(ids), 12)))
    return path


def test_train_on_a_full_disk_keeps_the_last_checkpoint_and_resumes(small_corpus, tmp_path, tmpfs):
    """The disk fills while epoch 2's checkpoint is written: exit 2 naming it, epoch 1's checkpoint is intact,
    and `--resume` on a grown disk ends with the vectors of a run that never ran out of space."""
    reference = tmp_path / "reference"
    result = run_cli("train", "--corpus", str(small_corpus), "--out", str(reference), *TRAIN_ARGS)
    assert result.returncode == 0, result.stderr
    arrays = pages((reference / "checkpoint" / "epoch-2.npz").stat().st_size)
    disk = tmpfs(arrays + arrays // 2)  # room for one checkpoint, not for two side by side
    out = disk / "run"
    result = run_cli("train", "--corpus", str(small_corpus), "--out", str(out), *TRAIN_ARGS)
    assert_one_line_error(result, 2, NO_SPACE, str(out / "checkpoint" / "epoch-2.npz"))
    saved = checkpoint.load(out / "checkpoint")  # verifies the sha256
    assert saved.meta["epochs_done"] == 1
    assert not list(out.rglob(".tmp-*")) and not (out / "vectors.bin").exists()

    tmpfs.remount(disk, 16 * 1024 * 1024)
    result = run_cli("train", "--corpus", str(small_corpus), "--out", str(out), "--resume", *TRAIN_ARGS)
    assert result.returncode == 0, result.stderr
    assert (out / "vectors.bin").read_bytes() == (reference / "vectors.bin").read_bytes()


# The smallest run that compiles every program a run compiles: tiny vectors, one epoch.
ONE_EPOCH = ("--dim", "8", "--epochs", "1", "--min-count", "1", "--seed", "3", "--workers", "1", "--no-progress")


def test_a_full_disk_while_encoding_the_corpus_is_one_line_and_leaves_nothing_half_written(small_corpus, tmpfs):
    """ENOSPC while the encoded corpus (about 130 kB here) is written in the run's scratch folder: exit 2 with one
    line naming it; the scratch folder is gone and what the output folder held is as it was; the rerun on a grown
    disk trains."""
    disk = tmpfs(16 * PAGE)
    out = disk / "run"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    argv = ("train", "--corpus", str(small_corpus), "--out", str(out), *ONE_EPOCH)
    assert_one_line_error(run_cli(*argv), 2, NO_SPACE, str(out / rundir.SCRATCH_NAME / "corpus.npy"))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "the user's own file\n"

    tmpfs.remount(disk, 4 * 1024 * 1024)
    result = run_cli(*argv)
    assert result.returncode == 0, result.stderr
    assert (out / "vectors.bin").exists() and not (out / rundir.SCRATCH_NAME).exists()


ENCODE_ON_A_FULL_DISK = """
import sys
from jaxgram.errors import DataError
from jaxgram.vocab import build_vocabulary, count_and_encode_to_npy, encode_to_npy, read_sentences
corpus, path, writer = sys.argv[1:]
try:
    if writer == "one pass":
        count_and_encode_to_npy(read_sentences(corpus), path, min_count=1)
    else:
        encode_to_npy(read_sentences(corpus), build_vocabulary(read_sentences(corpus), min_count=1), path)
except DataError as exc:
    print(exc)
"""


@pytest.mark.parametrize("writer", ["one pass", "two passes"])
def test_both_corpus_encoders_on_a_full_disk_raise_a_data_error_and_remove_their_file(small_corpus, tmpfs, writer):
    """count_and_encode_to_npy (what training uses) and encode_to_npy (whose file is sparse: a write through a
    memory map into its holes on a full disk was a SIGBUS) raise DataError naming the file, and remove it.
    In a child process, so that a crash is a failed test, not a dead test session."""
    disk = tmpfs(16 * PAGE)
    path = disk / "corpus.npy"
    result = subprocess.run([sys.executable, "-c", ENCODE_ON_A_FULL_DISK, str(small_corpus), str(path), writer],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"could not write the encoded corpus {path}: the disk is full ({NO_SPACE})"
    assert list(disk.iterdir()) == []


def cache_entries(folder: Path) -> dict[str, int]:
    """JAX's compilation cache entries in `folder` (name -> size), each checked to be what JAX can read."""
    entries = {p.name: p.stat().st_size for p in folder.glob("*-cache")}
    for name in entries:
        decompress_executable((folder / name).read_bytes())  # raises on an empty or cut-short entry
    return entries


def test_a_compilation_cache_on_a_full_disk_warns_once_and_keeps_no_broken_entry(small_corpus, tmp_path, tmpfs):
    """The cache's disk fills while JAX writes its entries: one warning line naming the folder and the full disk,
    and the run trains on; every entry left is whole. The next run, on a grown disk, prints nothing on stderr
    (no warning about an unreadable entry, though one was cut short meanwhile), writes the entries that were
    missing or cut short, and gives the same vectors."""
    cache = tmpfs(2 * PAGE)  # room for a few of the ten or so programs a run compiles (2-20 kB each)
    argv = ("train", "--corpus", str(small_corpus), *ONE_EPOCH, "--compilation-cache", str(cache))
    full = run_cli(*argv, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    lines = full.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"jaxgram: warning: compilation cache {cache} "), full.stderr
    assert NO_SPACE in lines[0] and "without a persistent cache for the rest of this run" in lines[0]
    kept = cache_entries(cache)
    # What a run killed mid-write, or a run with warnings ignored, leaves: an entry cut short.
    cut = cache / sorted(kept)[0]
    cut.write_bytes(cut.read_bytes()[:kept[cut.name] // 2])

    tmpfs.remount(cache, 4 * 1024 * 1024)
    free = run_cli(*argv, "--out", str(tmp_path / "free"))
    assert free.returncode == 0 and free.stderr == "", free.stderr
    written = cache_entries(cache)
    assert kept.items() < written.items()  # the entries kept are whole again, the missing ones are added
    assert (tmp_path / "free" / "vectors.bin").read_bytes() == (tmp_path / "full" / "vectors.bin").read_bytes()


LONG_LINE_TOKENS = 10_000_000
SENTENCE_CAP = 10_000


@pytest.fixture(scope="module")
def long_line(tmp_path_factory) -> Path:
    """One line of 10,000,001 tokens and no newline at all; the last token, `omega`, occurs nowhere else."""
    rng = np.random.default_rng(2)
    words = np.array([f"w{i}" for i in range(100)])
    path = tmp_path_factory.mktemp("long-line") / "corpus.txt"
    with open(path, "w") as handle:
        step = 1_000_000
        for _ in range(0, LONG_LINE_TOKENS, step):
            handle.write(" ".join(words[rng.integers(0, len(words), size=step)]) + " ")
        handle.write("omega")
    return path


def test_a_10_million_token_line_is_read_in_bounded_memory(long_line):
    """jaxgram splits a line longer than 10,000 tokens into sentences of 10,000 (gensim's LineSentence
    max_sentence_length) and drops nothing; it reads the line in blocks, so 300 MB of address space
    is enough for a 39 MB line (reading it whole takes about 1 GB)."""
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({300 * 2**20}, {300 * 2**20}))
        from jaxgram.vocab import read_sentences
        lengths, last = [], None
        for tokens in read_sentences(sys.argv[1]):
            lengths.append(len(tokens))
            last = tokens[-1]
        print(len(lengths), sum(lengths), max(lengths), min(lengths[:-1]), last)
    """)
    # One BLAS thread: OpenBLAS reserves buffers per core, which on a many-core machine is not what is measured.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", script, str(long_line)], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    sentences, tokens, longest, shortest, last = result.stdout.split()
    assert int(tokens) == LONG_LINE_TOKENS + 1 and last == "omega"
    assert int(sentences) == -(-(LONG_LINE_TOKENS + 1) // SENTENCE_CAP)
    assert int(longest) == int(shortest) == SENTENCE_CAP


def test_training_on_a_10_million_token_line_keeps_every_word(long_line, tmp_path):
    """`jaxgram train` on the long line under a 4 GiB address-space limit (XLA alone reserves about 1.7 GiB):
    every token is counted and encoded, in sentences of at most 10,000."""
    out = tmp_path / "run"
    result = run_cli("train", "--corpus", str(long_line), "--out", str(out), "--dim", "8", "--epochs", "1",
                     "--min-count", "1", "--sample", "1e-5", "--no-progress", "--save", "bin,corpus",
                     limit_bytes=4 * 2**30)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = {line.split("\t")[1]: int(line.split("\t")[2]) for line in (out / "vocab.tsv").read_text().splitlines()}
    assert sum(counts.values()) == LONG_LINE_TOKENS + 1 and counts["omega"] == 1
    flat = np.load(out / "corpus.npy", allow_pickle=False)
    assert int((flat >= 0).sum()) == LONG_LINE_TOKENS + 1
    assert int((flat < 0).sum()) == -(-(LONG_LINE_TOKENS + 1) // SENTENCE_CAP) - 1


def fill(disk: Path) -> Path:
    """Write one file into `disk` until it is full; that file."""
    path = disk / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(PAGE)):
            pass
    except OSError as exc:
        assert exc.strerror == NO_SPACE, exc
    finally:
        os.close(fd)
    return path


@pytest.mark.parametrize("command", ["train", "pipeline"])
def test_claiming_the_output_folder_on_a_full_disk_is_one_line_and_leaves_nothing(small_corpus, tmpfs, command):
    """`--out` on a disk with no room for the lock file's line: exit 2 with one line naming the folder and the
    full disk; neither the folder nor its missing parent is left behind."""
    disk = tmpfs(4 * PAGE)
    filler = fill(disk)
    out = disk / "runs" / "latest"
    options = TRAIN_ARGS if command == "train" else ("--no-progress",)
    result = run_cli(command, "--corpus", str(small_corpus), "--out", str(out), *options)
    line = assert_one_line_error(result, 2, str(out), f"the disk is full ({NO_SPACE})")
    assert line.startswith(f"jaxgram {command}: error: "), line
    assert list(disk.iterdir()) == [filler]
