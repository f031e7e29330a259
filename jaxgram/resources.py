"""The memory a training run needs, checked against the memory this process may use before the tables exist.

A run too big for its machine used to be accepted and fail late (issue 28): --dim 100000 grew past
16 GB over four minutes, --dim 1000000 ended in JAX's RESOURCE_EXHAUSTED traceback, and under a
memory limit XLA aborted with a C++ stack dump. Once the vocabulary is known, train()
calls check_memory, which estimates the run's peak (estimate_memory) and refuses one that cannot fit
in one line: the memory it needs, the limit it would pass, and the largest dim, vocabulary or worker
count that fits.

The estimate counts what grows with the run, as its parts allocate it (a run's peak RSS is within
a factor of two of it: tests/test_resources.py measures real runs):
- lasting: E, W unless tied, and the optimiser's state (Adagrad one table-sized array per table, Adam
  two); on a CPU mesh, once per device holding a replica, plus the host's copy it gathers to save;
- passing, the largest of what comes and goes on top of them: the initialisation (W is made even when
  tied, and E a block of init.ROWS_PER_DRAW rows at a time), the step (a dense optimiser's gradient and
  update of every table, full softmax's update of W and its logits, the XLA step's gathered rows, the
  fused kernel's per-thread copies of the hot rows, scratch and negatives: csrc/ns_sgd.cc Allocate),
  and vectors.bin (a block of word2vec_format.rows_per_write rows; the text formats, --save txt or
  tsv, hold about ten times that while formatting a block, a few tens of MB whatever D, not counted);
- host: one chunk of the corpus with its centre groups, and the few calls' inputs prefetched.
Off the CPU the tables and the step live on the accelerator; the host holds the tables while a
checkpoint or the vectors are written, which is what is counted there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
from dataclasses import dataclass, replace
from pathlib import Path

from jaxgram.batches import STEPS_PER_CALL
from jaxgram.config import CGROUP_ROOT, TrainConfig, cgroup_folders, own_cgroups, read_fields, resolved_workers
from jaxgram.errors import ConfigError
from jaxgram.init import ROWS_PER_DRAW
from jaxgram.word2vec_format import rows_per_write

FLOAT_BYTES = 4  # float32 tables; int32 ids
# Table-sized arrays the optimiser keeps per trainable table (optax: Adam's mu and nu, Adagrad's sum).
OPTIMIZER_STATE = {"sgd": 0, "adagrad": 1, "adam": 2}
# csrc/ns_sgd.cc kCopyFloats: the floats of one fused thread's copies of the hot rows, per table.
FUSED_COPY_FLOATS = 1 << 17
# Bytes per int32 token of a chunk while its centre groups are built (data.CentreGroups: the chunk
# read, the kept ids, their sentences, reach and centre positions), and calls' inputs held at once
# (the one training, the one prefetched, and a padded or joined copy).
CHUNK_BYTES_PER_TOKEN, CALLS_HELD = 24, 3


@dataclass(frozen=True)
class MemoryNeed:
    """A run's estimated peak, in bytes, in three parts."""

    lasting: int  # the tables and the optimiser's state
    passing: int  # the most that comes and goes on top of them: drawing the tables, a step, writing the vectors
    passing_while: str  # when that is, as the refusal says it: "while drawing them"
    host: int  # a chunk of the corpus and the calls prefetched

    @property
    def total(self) -> int:
        return self.lasting + self.passing + self.host

    def parts(self, config: TrainConfig) -> str:
        state = " and optimiser state" if OPTIMIZER_STATE[config.optimizer] else ""
        return (f"{_size(self.lasting)} of tables{state}, {_size(self.passing)} more {self.passing_while}, "
                f"{_size(self.host)} for the corpus")


@dataclass(frozen=True)
class MemoryLimit:
    """One limit on this process's memory: its size, what of it the process already uses, what sets it."""

    size: int
    used: int
    source: str  # where the memory is left, as the refusal says it: "under RLIMIT_AS"

    @property
    def left(self) -> int:
        return max(0, self.size - self.used)


def check_memory(config: TrainConfig, vocab_size: int, corpus_tokens: int, kernel: str, step_centres: int,
                 devices: int = 1, platform: str = "cpu", limit: MemoryLimit | None = None) -> None:
    """Raise ConfigError in one line when the run's estimated peak is more than the memory left under
    the tightest limit on this process (`limit`, tightest_limit() unless given), naming what fits."""
    shape = (corpus_tokens, kernel, step_centres, devices, platform)
    need = estimate_memory(config, vocab_size, *shape)
    limit = limit or tightest_limit()
    if limit is None or need.total <= limit.left:
        return

    def total(config=config, vocab_size=vocab_size) -> int:
        return estimate_memory(config, vocab_size, *shape).total

    smaller = {"dim": _largest(lambda d: total(replace(config, dim=d)), config.dim, limit.left),
               "max_vocab_size": _largest(lambda v: total(vocab_size=v), vocab_size, limit.left, least=2)}
    if kernel == "fused":
        smaller["workers"] = _largest(lambda w: total(replace(config, workers=w)), resolved_workers(config), limit.left)
    raise ConfigError(f"training {vocab_size:,} words at dim={config.dim} needs about {_size(need.total)} of memory "
                      f"({need.parts(config)}), more than the {_size(limit.left)} left {limit.source}; "
                      f"{_what_fits(smaller)}")


def _what_fits(smaller: dict[str, int | None]) -> str:
    """"it fits with dim=..., or with max_vocab_size=... instead", from the largest value of each option that fits."""
    fits = [f"with {name}={value}" for name, value in smaller.items() if value is not None]
    if not fits:
        return "no smaller dim, vocabulary or worker count fits: lower batch_size, chunk_tokens or negative"
    return "it fits " + ", or ".join(fits) + " instead"


def _largest(need_at, given: int, left: int, least: int = 1) -> int | None:
    """The largest n in least..given - 1 whose need_at(n) is within `left` bytes (need grows with n); None: none."""
    low, high = least, given - 1
    if high < low or need_at(low) > left:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if need_at(middle) <= left else (low, middle - 1)
    return low


def _size(count: int) -> str:
    """Bytes in binary units, to two or three figures: 512 KiB, 3.2 GiB, 75 GiB."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}" if count < 10 * scale else f"{count / scale:,.0f} {unit}"
    return f"{count} bytes"


def estimate_memory(config: TrainConfig, vocab_size: int, corpus_tokens: int, kernel: str, step_centres: int,
                    devices: int = 1, platform: str = "cpu") -> MemoryNeed:
    """The run's peak, estimated from its config, vocabulary size, corpus length (int32 tokens), step
    (`kernel` "fused" or "xla", `step_centres` centres per step, all devices together) and devices."""
    table = vocab_size * config.dim * FLOAT_BYTES
    held = _trainable(config) * (1 + OPTIMIZER_STATE[config.optimizer]) * table
    on_cpu = platform == "cpu"
    lasting = held * (_copies_on_cpu(config, devices) if on_cpu else 1)
    passing = [(_vectors_block(config, vocab_size), "while writing the vectors")]
    if on_cpu:
        passing += [(_init_bytes(config, vocab_size), "while drawing them"),
                    (_step_bytes(config, vocab_size, kernel, step_centres), _step_name(config, kernel, step_centres))]
    most, when = max(passing)
    host = min(corpus_tokens, config.chunk_tokens) * CHUNK_BYTES_PER_TOKEN + _calls_bytes(config, step_centres)
    return MemoryNeed(lasting, most, when, host)


def _step_name(config: TrainConfig, kernel: str, centres: int) -> str:
    if kernel == "fused":
        threads = max(1, min(resolved_workers(config), centres))
        return f"for the fused kernel's {threads} thread{'s' if threads > 1 else ''}"
    return "for a step"


def _trainable(config: TrainConfig) -> int:
    return 1 if config.tied else 2


def _copies_on_cpu(config: TrainConfig, devices: int) -> int:
    """Copies of the state a CPU run holds: one, or on a mesh one per replica (one in all when
    sharded) and the host's, which the run starts from and gathers each checkpoint into."""
    if devices == 1:
        return 1
    return (1 if config.shard_tables else devices) + 1


def _init_bytes(config: TrainConfig, vocab_size: int) -> int:
    """On top of the state while the tables are drawn: W (drawn, then dropped, when tied) and a block of E's bits and floats."""
    dropped = (2 - _trainable(config)) * vocab_size * config.dim * FLOAT_BYTES
    return dropped + 2 * min(vocab_size, ROWS_PER_DRAW) * config.dim * FLOAT_BYTES


def _step_bytes(config: TrainConfig, vocab_size: int, kernel: str, centres: int) -> int:
    """A step's temporaries on top of the state."""
    if kernel == "fused":
        return _fused_bytes(config, vocab_size, centres)
    table, row = vocab_size * config.dim * FLOAT_BYTES, config.dim * FLOAT_BYTES
    # A dense optimiser's gradient and update of every table; full softmax differentiates W whole even with SGD.
    dense = 2 * _trainable(config) * table if config.optimizer != "sgd" else 0
    if config.objective == "softmax":  # and each centre's V logits, probabilities and their gradient
        return max(dense, 2 * table) + 3 * centres * vocab_size * FLOAT_BYTES
    if dense:  # and the rows gathered for the gradient: each centre's context slots, itself and K negatives
        return dense + 3 * centres * (2 * config.window + 1 + config.negative) * row
    # lockstep_ns_sgd, one slot at a time: each centre's input row, its 1 + K output rows, and their gradients
    return 2 * centres * (2 + config.negative) * row


def _fused_bytes(config: TrainConfig, vocab_size: int, centres: int) -> int:
    """csrc/ns_sgd.cc Allocate: per thread, copies of the hot rows with their marks and scratch; per
    stream (a worker's share), its centres' negatives."""
    streams = resolved_workers(config)
    threads = max(1, min(streams, centres))
    hot = 0 if threads == 1 else min(vocab_size, FUSED_COPY_FLOATS // config.dim)
    copies = _trainable(config) * hot * (config.dim + 1) * FLOAT_BYTES
    scratch = (2 * config.dim + centres // streams + 1) * FLOAT_BYTES
    negatives = streams * (centres // streams + 1) * 2 * config.window * config.negative * FLOAT_BYTES
    return threads * (copies + scratch) + negatives


def _vectors_block(config: TrainConfig, vocab_size: int) -> int:
    """Writing vectors.bin: a block of rows, and the bytes it is joined into."""
    return 2 * min(vocab_size, rows_per_write(config.dim)) * config.dim * FLOAT_BYTES


def _calls_bytes(config: TrainConfig, centres: int) -> int:
    """The calls' inputs the host holds: each centre, its 2·window context slots and its mask."""
    return CALLS_HELD * STEPS_PER_CALL * centres * (2 * config.window + 2) * FLOAT_BYTES


def tightest_limit(cgroup_root: str | Path | None = None) -> MemoryLimit | None:
    """The limit that leaves this process the least memory (memory_limits); None where none is known."""
    return min(memory_limits(cgroup_root), key=lambda limit: limit.left, default=None)


def memory_limits(cgroup_root: str | Path | None = None) -> list[MemoryLimit]:
    """Every limit on this process's memory that can be read: physical memory, its cgroup's memory
    limit, RLIMIT_AS and RLIMIT_DATA, each with what this process already counts against it."""
    status = _process_status()
    rss = status.get("VmRSS", 0)
    limits = []
    physical = _physical_memory()
    if physical:
        limits.append(MemoryLimit(physical, rss, f"of the physical memory ({_size(physical)})"))
    cgroup = cgroup_memory_limit(cgroup_root or CGROUP_ROOT, own_cgroups("memory"))
    if cgroup is not None:
        limits.append(MemoryLimit(cgroup, rss, f"under the cgroup memory limit ({_size(cgroup)})"))
    for name, used in (("RLIMIT_AS", status.get("VmSize", 0)), ("RLIMIT_DATA", status.get("VmData", 0))):
        soft, _ = resource.getrlimit(getattr(resource, name))
        if soft != resource.RLIM_INFINITY:
            limits.append(MemoryLimit(soft, used, f"under {name} ({_size(soft)})"))
    return limits


def cgroup_memory_limit(root: str | Path = CGROUP_ROOT, own: dict[str, str] | None = None) -> int | None:
    """Bytes the cgroups under `root` let this process's cgroup use: the least limit along its path (as
    config.cgroup_cpu_quota walks it), None where none is set. v2: memory.max ("max": none); v1:
    memory.limit_in_bytes in the memory controller's folder. `own`: own_cgroups("memory")."""
    root, own = Path(root), own or {}
    files = [folder / "memory.max" for folder in cgroup_folders(root, own.get("v2", "/"))]
    files += [folder / "memory.limit_in_bytes" for folder in cgroup_folders(root / "memory", own.get("v1", "/"))]
    return min((limit for limit in map(_bytes_in, files) if limit is not None), default=None)


def _bytes_in(path: Path) -> int | None:
    """The byte count a cgroup file holds, None for "max", a missing file or anything else."""
    fields = read_fields(path)
    return int(fields[0]) if len(fields) == 1 and fields[0].isdigit() else None


def _process_status() -> dict[str, int]:
    """This process's VmRSS, VmSize and VmData in bytes, from /proc/self/status (empty where there is none)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:  # not Linux
        return {}
    sizes = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields = value.split()
        if name in ("VmRSS", "VmSize", "VmData") and len(fields) == 2 and fields[1] == "kB":
            sizes[name] = int(fields[0]) * 1024
    return sizes


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # a platform without these names
        return None


# glibc's mallopt parameter: allocations of at least this many bytes get their own mapping.
_M_MMAP_THRESHOLD = -3
LARGE_BUFFER_BYTES = 1 << 20


def map_large_buffers_apart() -> None:
    """Have glibc give every buffer of LARGE_BUFFER_BYTES or more its own mapping, returned to the
    OS when freed (mallopt M_MMAP_THRESHOLD; elsewhere nothing), for the rest of the process.

    By default glibc raises that threshold to the size of each large buffer freed (up to 32 MB),
    after which such buffers come from a heap that keeps their pages once they are freed. Making
    a row-sharded table block by block (init.init_shard) then left about 0.4 of a table of freed
    blocks resident, and the whole start of a run 0.7 (measured at V = 400k, D = 200).
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES)


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> None:
    """Give the C heap's free pages back to the OS (glibc's malloc_trim; elsewhere nothing).

    Counting a large vocabulary allocates and frees hundreds of MB of small objects; glibc keeps
    the freed pages mapped for reuse, but the tables that come next are allocated apart from
    them, so without this the process's resident memory carries both (at V = 400k about 30 MB).
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):  # glibc only
        libc.malloc_trim(0)
