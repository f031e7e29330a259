"""Training configuration: one frozen dataclass, validated before any work starts."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxgram.errors import ConfigError
from jaxgram.validation import check_fields, check_type, coerce, field_types

OBJECTIVES = ("ns", "softmax")
OPTIMIZERS = ("sgd", "adam", "adagrad")
INITS = ("word2vec", "gensim", "glorot")
# How alpha falls from alpha to min_alpha. "per_worker": as in gensim's corpus_file mode, where
# each of the `workers` threads walks its own share of the corpus and sets alpha from its own
# progress, so within an epoch alpha falls 1/workers of that epoch's way and catches up when the
# next epoch starts. "linear": with the progress of all workers together, as word2vec.c and
# gensim's iterable mode do. One worker: the two are the same. "auto": per_worker for the fused
# kernel, whose worker threads are what it models, linear for the XLA step (accelerators, meshes).
ALPHA_SCHEDULES = ("auto", "per_worker", "linear")
# How the sparse SGD step of negative sampling runs: "fused" (one C++ call, CPU), "xla" (the
# pure JAX step), or "auto" (fused where it applies and is built, else xla).
KERNELS = ("auto", "xla", "fused")
ALL_DEVICES = "all"
# Pairs per step when batch_size is None. On CPU the XLA step's ~170 centres keep the rows it
# touches in cache; the fused kernel's threads train their own copies of the frequent words'
# rows for a step and add them up when it ends (csrc/ns_sgd.cc, PartRows), which pays from a
# few thousand centres per step: on the five books 16,384 pairs trained 1.5x as fast as 1,024
# and agreed with gensim inside the noise floors, 65,536 fell just outside them (docs/performance.md).
# An accelerator needs thousands of centres per step to fill its cores (bench/gpu.py measures
# 2,048 centres, 12,288 pairs at window 5).
BATCH_PAIRS = {"cpu": 1024, "fused": 16384, "accelerator": 12288}
# gensim's Word2Vec keywords that name one of our fields differently and mean what that field means;
# from_dict takes either name (the CLI too, as --vector-size). gensim's max_final_vocab, like our
# max_vocab_size, keeps the N most frequent words once counting is done (at a tie on the N-th count
# gensim keeps fewer, we keep exactly N, ties alphabetical). gensim's own max_vocab_size, a memory
# cap applied while counting, has no twin here.
GENSIM_NAMES = {"vector_size": "dim", "shrink_windows": "shrink_window", "max_final_vocab": "max_vocab_size"}
# The most `workers` a run may ask for. The fused kernel gives each of its threads its own copies of
# the frequent words' rows, up to 512 KiB per table (csrc/ns_sgd.cc kCopyFloats, PartRows, Allocate)
# plus their marks and scratch: up to 2 MiB a thread, so 1,024 threads hold up to 2 GiB besides the
# tables. That is more than the cores of the largest two-socket servers (768 hardware threads), and
# threads beyond the cores only take turns. A count far past it (100,000) used to grow the process
# past 15 GB in minutes without a word; it is refused before any work instead.
MAX_WORKERS = 1024
# The largest value of the other integer fields. Counts that size arrays stop at int32's largest: the
# encoded corpus, the word ids and the fused kernel's positions are int32. A value past what its
# consumer holds used to fail deep in NumPy or JAX with a traceback (issue 28: --seed 2**63 an
# OverflowError in jax.random.PRNGKey, --window 10**9 a 477 GiB allocation), so each is refused
# before any work; what fits in memory is checked once the vocabulary is known (jaxgram.resources).
INT32_MAX = 2**31 - 1
# jax.random.PRNGKey keeps a seed's low 32 bits (JAX runs without x64): seed 2**32 would train as seed 0.
MAX_SEED = 2**32 - 1
# A wider window reaches no further word: corpus files are read in sentences of at most 10,000
# words (vocab.MAX_SENTENCE_LENGTH, gensim's MAX_WORDS_IN_BATCH).
MAX_WINDOW = 9_999
# Word counts are int64.
MAX_MIN_COUNT = 2**63 - 1
# The largest float32: the step computes in float32, and a larger alpha became inf with NumPy's
# overflow warnings printed before the run's one-line error.
FLOAT32_MAX = 3.4028234663852886e38
# Where the kernel shows this process its cgroups (v2 at the top, v1 one folder per controller).
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one skip-gram run; names and defaults follow gensim/word2vec."""

    objective: str = "ns"
    dim: int = 100
    window: int = 5
    shrink_window: bool = True
    negative: int = 5
    ns_exponent: float = 0.75
    epochs: int = 5
    min_count: int = 5
    max_vocab_size: int | None = None
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 0.0001
    alpha_schedule: str = "auto"
    optimizer: str = "sgd"
    init: str = "word2vec"
    tied: bool = False
    # Pairs per optimiser step; None = the backend's default (BATCH_PAIRS). The objective is the
    # SUM over the batch, so each pair gets word2vec's per-pair learning rate whatever the size.
    batch_size: int | None = None
    seed: int = 1
    # None: one device. N or "all": synchronous data parallelism over a mesh of that many devices
    # (all processes' devices when jax.distributed is initialised); a batch_size given is then per
    # device, and the default (batch_size None) is the platform's step split across the devices.
    devices: int | str | None = None
    # Row-shard E and W (and any per-entry optimiser state) across the mesh instead of
    # replicating them, so a table larger than one device's memory fits. Needs `devices`.
    shard_tables: bool = False
    # Encoded tokens per chunk the host turns into training groups at a time (bounds host
    # memory); each chunk is cut into the workers' shares, so it is part of what a seed reproduces.
    chunk_tokens: int = 4_000_000
    # CPU worker count for sparse SGD (like gensim's workers): threads of the fused kernel, not JAX
    # devices; None = the usable cores (affinity mask and cgroup CPU quota; see default_workers).
    # At most MAX_WORKERS.
    workers: int | None = None
    # Which implementation runs the step (KERNELS): the fused kernel's pair-by-pair update is
    # gensim's; the XLA step is a batched version of the same objective (jaxgram.step).
    kernel: str = "auto"

    def validate(self) -> TrainConfig:
        """Raise ConfigError naming the first bad field; return self so calls can chain."""
        check_fields(self)
        _choice("objective", self.objective, OBJECTIVES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("init", self.init, INITS)
        _choice("kernel", self.kernel, KERNELS)
        _choice("alpha_schedule", self.alpha_schedule, ALPHA_SCHEDULES)
        for name, (low, high) in self._int_ranges().items():
            if getattr(self, name) is not None:
                _within(name, getattr(self, name), low, high)
        if isinstance(self.devices, str):
            if self.devices != ALL_DEVICES:
                raise ConfigError(f"devices={self.devices!r} is not allowed: it must be an int >= 1 or {ALL_DEVICES!r}")
        elif self.devices is not None:
            _within("devices", self.devices, 1, INT32_MAX)
        if self.shard_tables and self.devices is None:
            raise ConfigError("shard_tables=True is not allowed without devices: sharded tables need the "
                              "synchronous mesh path (set devices to N or 'all')")
        if not 0 < self.alpha <= FLOAT32_MAX:
            raise ConfigError(f"alpha={self.alpha!r} is not allowed: it must be > 0 and finite in float32 "
                              f"(at most {FLOAT32_MAX:.3g})")
        if not 0 <= self.min_alpha <= self.alpha:
            raise ConfigError(f"min_alpha={self.min_alpha!r} is not allowed: it must be between 0 and alpha ({self.alpha})")
        if not 0 <= self.sample < 1:
            raise ConfigError(f"sample={self.sample!r} is not allowed: it must be in [0, 1) (0 disables subsampling)")
        if not 0 <= self.ns_exponent <= 1:
            raise ConfigError(f"ns_exponent={self.ns_exponent!r} is not allowed: it must be in [0, 1]")
        return self

    def _int_ranges(self) -> dict[str, tuple[int, int]]:
        """(least, largest) of each integer field, in field order; a None field (a default) is not checked."""
        return {"dim": (1, INT32_MAX), "window": (1, MAX_WINDOW),
                "negative": (1 if self.objective == "ns" else 0, INT32_MAX), "epochs": (1, INT32_MAX),
                "min_count": (1, MAX_MIN_COUNT), "max_vocab_size": (2, INT32_MAX), "batch_size": (1, INT32_MAX),
                "seed": (0, MAX_SEED), "chunk_tokens": (2, INT32_MAX), "workers": (1, MAX_WORKERS)}

    @property
    def vector_size(self) -> int:
        """gensim's name for `dim`, for code that reads `model.vector_size`."""
        return self.dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build and validate a config; unknown keys and wrong types raise ConfigError naming the key.

        Keys are field names or their gensim names (GENSIM_NAMES), not both for one field."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"config must be a mapping of field names to values, got {type(values).__name__}")
        hints = field_types(cls)
        unknown = sorted(set(values) - set(hints) - set(GENSIM_NAMES))
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]!r}; allowed keys: {', '.join(hints)} "
                              f"(or gensim's {', '.join(GENSIM_NAMES)})")
        by_field = _keyed_by_field(values)
        given_as = {GENSIM_NAMES[key]: key for key in values if key in GENSIM_NAMES}
        try:
            for key, value in by_field.items():
                check_type(key, value, hints[key])
            return cls(**{key: coerce(value, hints[key]) for key, value in by_field.items()}).validate()
        except ConfigError as error:
            raise with_spelling(error, given_as) from None


def _keyed_by_field(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` keyed by field name: gensim's names replaced by ours, both names for one field refused."""
    for gensim_name, field in GENSIM_NAMES.items():
        if gensim_name in values and field in values:
            raise ConfigError(f"{field}={values[field]!r} and {gensim_name}={values[gensim_name]!r} are one setting "
                              f"({gensim_name} is gensim's name for {field}): give only one")
    return {GENSIM_NAMES.get(key, key): value for key, value in values.items()}


def with_spelling(error: ConfigError, given_as: Mapping[str, str]) -> ConfigError:
    """`error`, plus "(given as -size)" when it is about a field the user named another way.

    Messages start "field=value", so the field is the text before the first "="."""
    field = str(error).partition("=")[0]
    if field not in given_as:
        return error
    return ConfigError(f"{error} (given as {given_as[field]})")


def usable_cores(cgroup_root: str | Path | None = None) -> int:
    """CPU cores this process may use: its affinity mask, lowered to its cgroup's CPU quota rounded up
    (docker's --cpus 1.5 allows 1.5 cores' worth of time: 2 cores), at least 1.
    `cgroup_root`: where the cgroups are mounted, CGROUP_ROOT unless given."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root or CGROUP_ROOT, own_cgroups())
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(root: str | Path = CGROUP_ROOT, own: Mapping[str, str] | None = None) -> float | None:
    """Cores' worth of CPU time the cgroups under `root` allow (quota / period), the least of this
    process's cgroup and those above it; None where none sets a quota (or there are no cgroups).

    cgroup v2: cpu.max, "QUOTA PERIOD" or "max PERIOD". v1: cpu.cfs_quota_us (-1: none) and
    cpu.cfs_period_us in the cpu controller's folder. `own`: the process's cgroup path per version
    ("v2", "v1"), from /proc/self/cgroup; a path that is not under `root` (a container that sees
    only its own cgroup, mounted at `root`) leaves `root` itself to read."""
    root, own = Path(root), own or {}
    quotas = [_cpu_max(folder / "cpu.max") for folder in cgroup_folders(root, own.get("v2", "/"))]
    for controller in ("cpu", "cpu,cpuacct"):
        quotas += [_cfs_quota(folder) for folder in cgroup_folders(root / controller, own.get("v1", "/"))]
    return min((quota for quota in quotas if quota is not None), default=None)


def cgroup_folders(root: Path, path: str) -> list[Path]:
    """`root`/`path` and each folder above it up to `root`, those that exist."""
    # A path with ".." lies outside the cgroups this process can see (another namespace's): read `root`.
    folder, folders = (root if ".." in Path(path).parts else root / path.strip("/")), []
    while True:
        if folder.is_dir():
            folders.append(folder)
        if folder == root or root not in folder.parents:
            return folders
        folder = folder.parent


def _cpu_max(path: Path) -> float | None:
    fields = read_fields(path)
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _cfs_quota(folder: Path) -> float | None:
    quota, period = read_fields(folder / "cpu.cfs_quota_us"), read_fields(folder / "cpu.cfs_period_us")
    if len(quota) != 1 or len(period) != 1:
        return None
    return _ratio(quota[0], period[0])


def _ratio(quota: str, period: str) -> float | None:
    """quota / period, or None where either is not a positive count (v1's -1 means no quota)."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def read_fields(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:  # absent: no such controller or version here
        return []


def own_cgroups(controller: str = "cpu") -> dict[str, str]:
    """This process's cgroup path per version from /proc/self/cgroup: {"v2": ..., "v1": `controller`'s}
    (cgroup v1 mounts each controller, cpu or memory, with its own tree)."""
    own = {}
    for line in _read_lines(Path("/proc/self/cgroup")):
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            own["v2"] = path
        elif controller in controllers.split(","):
            own["v1"] = path
    return own


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:  # not Linux
        return []


def default_workers() -> int:
    """Workers when the config names none: the usable cores (usable_cores), at most MAX_WORKERS."""
    return min(usable_cores(), MAX_WORKERS)


def resolved_workers(config: TrainConfig) -> int:
    """The worker count a run uses: `config.workers`, or default_workers() when it is None."""
    return config.workers if config.workers is not None else default_workers()


def resolved_config(config: TrainConfig, kernel: str) -> TrainConfig:
    """`config` as it ran with `kernel` ("fused" or "xla"): the worker count, kernel and schedule its
    None and "auto" stood for (what a run's config.json records)."""
    return dataclasses.replace(config, workers=resolved_workers(config), kernel=kernel,
                               alpha_schedule=resolved_alpha_schedule(config, kernel))


def resolved_alpha_schedule(config: TrainConfig, kernel: str) -> str:
    """"per_worker" or "linear": the schedule a run whose step is `kernel` ("fused" or "xla") follows."""
    if config.alpha_schedule == "auto":
        return "per_worker" if kernel == "fused" else "linear"
    return config.alpha_schedule


def resolved_batch_size(config: TrainConfig, platform: str = "cpu", kernel: str = "xla") -> int:
    """Pairs per step a run on `platform` ("cpu", "gpu", "tpu", ...) with `kernel` ("xla" or "fused")
    uses: config.batch_size or BATCH_PAIRS."""
    if config.batch_size is not None:
        return config.batch_size
    if kernel == "fused":
        return BATCH_PAIRS["fused"]
    return BATCH_PAIRS["cpu" if platform == "cpu" else "accelerator"]


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed: choose one of {', '.join(allowed)}")


def _within(name: str, value: Any, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} has the wrong type: expected int")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value!r} is not allowed: it must be in {minimum}..{maximum}")
