"""The memory check before training: the estimate against real runs, the limits read from the kernel's
cgroup files and rlimits, and `jaxgram train` refusing a run too big for them, in seconds and in one line."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jaxgram import TrainConfig
from jaxgram.errors import ConfigError
from jaxgram.resources import (
    FUSED_COPY_FLOATS,
    MemoryLimit,
    cgroup_memory_limit,
    check_memory,
    estimate_memory,
)

REPO = Path(__file__).resolve().parents[1]
GiB = 2**30
# What the refused runs are given: an address space JAX starts in, far below what dim=100000 on
# the corpus's 5,000 words needs (7.5 GiB), so every machine refuses them however much memory it has.
ADDRESS_SPACE = 4 * GiB


def _corpus(path: Path, words: int, repeats: int) -> Path:
    """`words` made-up words, each `repeats` times, shuffled, 12 to a line: a vocabulary of `words` at min_count 1."""
    tokens = [f"w{i}" for i in range(words)] * repeats
    random.Random(0).shuffle(tokens)
    path.write_text("".join(" ".join(tokens[i:i + 12]) + "\n" for i in range(0, len(tokens), 12)))
    return path


@dataclasses.dataclass
class Finished:
    status: int
    stderr: str
    cpu_seconds: float
    peak_rss: int


# Runs argv[2:] under RLIMIT_AS = argv[1] (0: none) and prints its peak RSS and CPU time. A child's
# ru_maxrss starts from its parent's RSS (Linux counts the memory it was forked with), so the test
# process, a GB after many tests, starts the command from this small launcher, not itself.
LAUNCHER = textwrap.dedent("""
    import os, resource, sys

    address_space, argv = int(sys.argv[1]), sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        if address_space:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.execv(argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    print(usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime)
    sys.exit(os.waitstatus_to_exitcode(status))
""")


def run_train(*argv: str, address_space: int = 0) -> Finished:
    """The real `jaxgram train` in a child, under RLIMIT_AS = `address_space` if given; its CPU time and peak RSS."""
    command = [sys.executable, "-m", "jaxgram", "train", "--no-progress", "--min-count", "1", *argv]
    completed = subprocess.run([sys.executable, "-c", LAUNCHER, str(address_space), *command], capture_output=True,
                               text=True, cwd=REPO, timeout=300)
    peak_rss, cpu_seconds = completed.stdout.split()
    return Finished(completed.returncode, completed.stderr, float(cpu_seconds), int(peak_rss))


# -- refusals of the real CLI --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_thousand_words(tmp_path_factory) -> Path:
    return _corpus(tmp_path_factory.mktemp("words") / "corpus.txt", 5000, 2)


@pytest.mark.fault
@pytest.mark.parametrize("argv, address_space, message", [
    # Past what the machine's limit allows: refused once the vocabulary is counted, naming the dim that fits.
    (["--dim", "1000000"], ADDRESS_SPACE, r"training 5,000 words at dim=1000000 needs about 75 GiB of memory \(.*\), "
                                          r"more than the .* left under RLIMIT_AS \(4\.0 GiB\); it fits with dim=\d+, "
                                          r"or with max_vocab_size=\d+ instead$"),
    (["--dim", "100000"], ADDRESS_SPACE, r"training 5,000 words at dim=100000 needs about 7\.5 GiB of memory \(.*\), "
                                         r"more than the .* left under RLIMIT_AS \(4\.0 GiB\); it fits with dim=\d+, "
                                         r"or with max_vocab_size=\d+ instead$"),
    # Past the option's range: refused before JAX starts.
    (["--workers", "2000"], 0, r"workers=2000 is not allowed: it must be in 1\.\.1024$"),
    (["--workers", "100000"], 0, r"workers=100000 is not allowed: it must be in 1\.\.1024$"),
    (["--seed", str(2**63)], 0, r"seed=9223372036854775808 is not allowed: it must be in 0\.\.4294967295$"),
    (["--seed", "-1"], 0, r"seed=-1 is not allowed: it must be in 0\.\.4294967295$"),
])
def test_a_run_too_big_or_out_of_range_is_refused_in_seconds_in_one_line(five_thousand_words, tmp_path, argv,
                                                                       address_space, message):
    out = tmp_path / "run"
    finished = run_train("--corpus", str(five_thousand_words), "--out", str(out), *argv, address_space=address_space)
    assert finished.status == 2 and "Traceback" not in finished.stderr, finished.stderr
    assert finished.stderr.count("\n") == 1 and finished.stderr.startswith("jaxgram train: error: "), finished.stderr
    assert re.search(message, finished.stderr.rstrip("\n")), finished.stderr
    # CPU time, not wall time: the same on a loaded machine. Nothing of the tables was ever allocated.
    assert finished.cpu_seconds < 5 and finished.peak_rss < GiB, finished
    assert not (out / "vectors.bin").exists()


# -- the estimate ---------------------------------------------------------------------------------------


def _estimate(config: TrainConfig, vocab_size: int = 20_000, kernel: str = "fused", **shape):
    return estimate_memory(config, vocab_size, shape.pop("corpus_tokens", 100_000), kernel,
                           shape.pop("step_centres", 2730), **shape)


def test_the_tables_and_optimiser_state_count_one_table_each():
    table = 20_000 * 100 * 4
    assert _estimate(TrainConfig(workers=1)).lasting == 2 * table  # E and W
    assert _estimate(TrainConfig(workers=1, tied=True)).lasting == table
    assert _estimate(TrainConfig(optimizer="adagrad"), kernel="xla").lasting == 4 * table  # and one sum per table
    assert _estimate(TrainConfig(optimizer="adam"), kernel="xla").lasting == 6 * table  # and mu and nu per table
    # A CPU mesh of 4 replicates the tables on each device, and the host holds the copy it saves.
    assert _estimate(TrainConfig(devices=4), kernel="xla", devices=4).lasting == 5 * 2 * table
    assert _estimate(TrainConfig(devices=4, shard_tables=True), kernel="xla", devices=4).lasting == 2 * 2 * table


def test_each_fused_thread_holds_its_own_copies_of_the_hot_rows():
    one, many = (_estimate(TrainConfig(workers=workers)) for workers in (1, 1024))
    hot_rows = FUSED_COPY_FLOATS // 100
    copies = 1024 * 2 * hot_rows * 100 * 4  # E's and W's hot rows, per thread
    assert many.passing - one.passing >= copies and many.passing < 1.1 * copies + one.passing
    assert many.passing_while == "for the fused kernel's 1024 threads"


def test_the_fused_kernels_copy_size_is_the_kernels():
    source = (REPO / "csrc" / "ns_sgd.cc").read_text()
    shift = int(re.search(r"kCopyFloats = int64_t\{1\} << (\d+);", source).group(1))
    assert FUSED_COPY_FLOATS == 1 << shift


@pytest.mark.fault
def test_the_estimate_is_within_a_factor_of_two_of_a_real_runs_peak(tmp_path):
    """The growth of a real run's peak RSS from dim 10 to dim 2000 (80 MB a table at 10,000 words),
    against the growth of the estimate: the baseline (Python, JAX, the vocabulary) cancels out."""
    from jaxgram.batches import step_width
    from jaxgram.step import resolve_kernel
    from jaxgram.training import prepare_corpus

    corpus, dims = _corpus(tmp_path / "corpus.txt", 10_000, 1), (10, 2000)
    with concurrent.futures.ThreadPoolExecutor(len(dims)) as pool:  # side by side: the test takes one run's time
        runs = list(pool.map(lambda dim: run_train("--corpus", str(corpus), "--out", str(tmp_path / f"d{dim}"),
                                                   "--dim", str(dim), "--epochs", "1", "--workers", "2"), dims))
    assert [run.status for run in runs] == [0, 0], [run.stderr for run in runs]
    estimates = []
    for dim in dims:
        config = TrainConfig(dim=dim, min_count=1, epochs=1, workers=2)
        vocab, encoded = prepare_corpus(corpus, config)
        kernel = resolve_kernel(config, "cpu", on_mesh=False)
        centres, _ = step_width(config, vocab.counts, "cpu", 1, kernel)
        tokens = len(encoded.ids) + len(encoded.sentences())  # the ids and a separator after each sentence
        estimates.append(estimate_memory(config, len(vocab), tokens, kernel, centres).total)
    ratio = (estimates[1] - estimates[0]) / (runs[1].peak_rss - runs[0].peak_rss)
    assert 0.5 < ratio < 2, ratio


# -- the refusal -----------------------------------------------------------------------------------------


def _refusal(config: TrainConfig, left: int, vocab_size: int = 5000, kernel: str = "fused") -> str:
    with pytest.raises(ConfigError) as info:
        check_memory(config, vocab_size, 10_000, kernel, 2730, limit=MemoryLimit(left + 100, 100, "under RLIMIT_AS"))
    return str(info.value)


def _fits(config: TrainConfig, left: int, vocab_size: int = 5000, kernel: str = "fused") -> bool:
    return _estimate(config, vocab_size, kernel, corpus_tokens=10_000).total <= left


def test_the_refusal_names_the_largest_dim_vocabulary_and_workers_that_fit():
    config, left = TrainConfig(dim=100, workers=1024), 800 * 2**20
    message = _refusal(config, left)
    assert message.startswith("training 5,000 words at dim=100 needs about 1.0 GiB of memory (")
    assert "more for the fused kernel's 1024 threads" in message and "more than the 800 MiB left under RLIMIT_AS" in message
    found = dict(re.findall(r"with (\w+)=(\d+)", message))
    assert set(found) == {"dim", "max_vocab_size", "workers"}
    dim, words, workers = int(found["dim"]), int(found["max_vocab_size"]), int(found["workers"])
    # Each is the largest that fits: one more does not.
    assert _fits(dataclasses.replace(config, dim=dim), left) and not _fits(dataclasses.replace(config, dim=dim + 1), left)
    assert _fits(config, left, vocab_size=words) and not _fits(config, left, vocab_size=words + 1)
    assert _fits(dataclasses.replace(config, workers=workers), left)
    assert not _fits(dataclasses.replace(config, workers=workers + 1), left)


def test_a_run_that_fits_is_not_refused_and_one_whose_buffers_alone_do_not_says_what_to_lower():
    check_memory(TrainConfig(workers=1), 5000, 10_000, "fused", 2730, limit=MemoryLimit(GiB, 0, "of the physical memory"))
    message = _refusal(TrainConfig(negative=10**9, workers=1), GiB)
    assert message.endswith("no smaller dim, vocabulary or worker count fits: lower batch_size, chunk_tokens or negative")


# -- the limits ------------------------------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize("files, own, limit", [
    ({}, {}, None),  # no cgroups
    ({"memory.max": "max\n"}, {}, None),  # v2, no limit
    ({"memory.max": "2147483648\n"}, {}, 2 * GiB),  # v2: docker --memory 2g
    ({"memory/memory.limit_in_bytes": "1073741824\n"}, {}, GiB),  # v1
    # The process's own cgroup and those above it: the least limit along the path counts.
    ({"memory.max": "max", "a/memory.max": "4294967296", "a/b/memory.max": "max"}, {"v2": "/a/b"}, 4 * GiB),
    ({"memory/a/memory.limit_in_bytes": "3221225472", "memory/a/b/memory.limit_in_bytes": "9223372036854771712"},
     {"v1": "/a/b"}, 3 * GiB),
    ({"memory.max": "garbage"}, {}, None),
])
def test_cgroup_memory_limit_reads_crafted_cgroup_files(tmp_path, files, own, limit):
    _write(tmp_path, files)
    assert cgroup_memory_limit(tmp_path, own) == limit


# Prints the tightest limit a child under an rlimit finds: what check_memory compares against.
TIGHTEST = textwrap.dedent("""
    import resource, sys
    from jaxgram.resources import memory_limits, tightest_limit

    which = getattr(resource, sys.argv[1])
    resource.setrlimit(which, (int(sys.argv[2]), resource.getrlimit(which)[1]))
    limit = tightest_limit()
    print(limit.source, limit.size, limit.used, len(memory_limits()))
""")


@pytest.mark.parametrize("name", ["RLIMIT_AS", "RLIMIT_DATA"])
def test_an_rlimit_is_the_tightest_limit_with_what_the_process_already_uses(name):
    completed = subprocess.run([sys.executable, "-c", TIGHTEST, name, str(3 * GiB)], capture_output=True, text=True,
                               timeout=120, cwd=REPO)
    assert completed.returncode == 0, completed.stderr
    source, size, used, count = completed.stdout.rsplit(" ", 3)
    assert source == f"under {name} (3.0 GiB)" and int(size) == 3 * GiB
    assert 0 < int(used) < 3 * GiB  # the address space or data the child maps already counts against it
    assert int(count) >= 2  # and physical memory is one of the limits read


# A 16 MiB buffer freed (glibc then raises its mmap threshold to that size), then 40 buffers of
# 4 MiB made and every other one freed; prints how far resident memory grew, in MiB. argv[1] "apart":
# map_large_buffers_apart() first.
FREED_HOLES = """
    import sys
    import numpy as np
    from jaxgram import resources

    def resident():
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS:"))

    if sys.argv[1] == "apart":
        resources.map_large_buffers_apart()
    big = np.ones(2 << 20)
    del big
    before = resident()
    blocks = [np.ones(1 << 19) for _ in range(40)]
    del blocks[::2]
    print(resident() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator and /proc")
def test_large_buffers_mapped_apart_go_back_to_the_os_when_freed():
    def grown(mode: str) -> float:
        completed = subprocess.run([sys.executable, "-c", textwrap.dedent(FREED_HOLES), mode], capture_output=True,
                                   text=True, timeout=60, check=True)
        return float(completed.stdout.split()[-1])

    # 20 buffers of 4 MiB live: 80 MiB. Left to glibc, the 20 freed between them stay resident too.
    assert grown("apart") < 90 < 140 < grown("heap")
