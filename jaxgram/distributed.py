"""JAX's multi-device, multi-process runtime as `jaxgram train` uses it.

- `configure_cpu_workers`: how many CPU devices JAX creates (what a CPU mesh, `devices`,
  needs; the fused kernel's workers are threads, not devices), set where the process starts,
  before JAX runs: by the CLI, or by a library user who wants a CPU mesh. Importing jaxgram
  never changes `jax.config`.
- `Cluster` + `initialize`: `jax.distributed.initialize` from explicit flags
  (--coordinator HOST:PORT --num-processes N --process-id I) or JAX's cluster
  auto-detection (Slurm, Open MPI, TPU pods). CPU collectives go through gloo.
- `device_mesh`: the one-axis `Mesh` synchronous training runs on (`devices` = N or "all";
  with several processes it always spans every process's devices).
- `global_array` / `to_host`: a host array laid out on the mesh, each process feeding only
  its own devices' shards (with several processes, each fills only its devices' columns of a
  step: jaxgram.corpus_shares), and a whole array read back.
- Process 0 (`is_primary`) writes the run's files; with row-sharded tables each process
  writes its own checkpoint part (jaxgram.checkpoint_shards).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgram.config import ALL_DEVICES
from jaxgram.errors import ConfigError, JaxgramError

DATA_AXIS = "data"
# jax.distributed numbers processes in int32; past that its own check raises a traceback.
MAX_PROCESSES = 2**31 - 1


class ClusterError(JaxgramError):
    """The processes of a multi-host run could not find each other."""


@dataclass(frozen=True)
class Cluster:
    """How this process joins a multi-process run; all None and auto=False: a single process."""

    coordinator: str | None = None  # HOST:PORT of process 0's coordination service
    num_processes: int | None = None
    process_id: int | None = None
    auto: bool = False  # let JAX detect the cluster (Slurm, Open MPI, TPU)

    @property
    def enabled(self) -> bool:
        return self.auto or self.coordinator is not None or self.num_processes is not None or self.process_id is not None

    def validate(self) -> Cluster:
        explicit = {"coordinator": self.coordinator, "num_processes": self.num_processes, "process_id": self.process_id}
        given = [name for name, value in explicit.items() if value is not None]
        if self.auto:
            if given:
                raise ConfigError(f"{given[0]} is not allowed with distributed='auto': "
                                  "give either auto-detection or all of coordinator, num_processes, process_id")
            return self
        if given and len(given) < 3:
            missing = [name for name in explicit if name not in given]
            raise ConfigError(f"{', '.join(given)} given without {', '.join(missing)}: "
                              "a multi-process run needs coordinator, num_processes and process_id together")
        if not given:
            return self
        host, _, port = self.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"coordinator={self.coordinator!r} is not allowed: it must be HOST:PORT with a port in 1..65535")
        if not 1 <= self.num_processes <= MAX_PROCESSES:
            raise ConfigError(f"num_processes={self.num_processes} is not allowed: it must be in 1..{MAX_PROCESSES}")
        if not 0 <= self.process_id < self.num_processes:
            raise ConfigError(f"process_id={self.process_id} is not allowed: it must be in 0..{self.num_processes - 1}")
        return self


def initialize(cluster: Cluster, command: str = "jaxgram") -> None:
    """Join the run described by `cluster` (nothing to do for a single process). Call before any JAX work.
    SIGTERM or Ctrl-C while it waits for the other processes ends this process at once: one line
    naming `command`, exit 130 (see interrupts_while_waiting)."""
    cluster.validate()
    if not cluster.enabled:
        return
    # CPU devices of different processes exchange data only through a collectives library;
    # gloo ships with jaxlib (and is the default from jax 0.5 on; older versions need it named).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    where = "the other processes" if cluster.auto else f"the other processes at coordinator {cluster.coordinator}"
    try:
        with interrupts_while_waiting(f"{command}: interrupted while waiting for {where}"):
            if cluster.auto:
                jax.distributed.initialize()
            else:
                jax.distributed.initialize(cluster.coordinator, cluster.num_processes, cluster.process_id)
    except (RuntimeError, ValueError) as exc:
        where = "auto-detection" if cluster.auto else f"coordinator {cluster.coordinator}"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ("; outside Slurm, Open MPI or a TPU pod give coordinator, num_processes and process_id"
                if cluster.auto else "")
        raise ClusterError(f"jax.distributed.initialize failed ({where}): {first_line}{hint}") from exc


@contextlib.contextmanager
def interrupts_while_waiting(message: str):
    """SIGTERM and SIGINT end the process (`message` on stderr, exit 130) while the block waits inside C++.

    jax.distributed.initialize waits for every process of the run (up to its timeout, minutes) without
    returning to Python, so Python's handlers cannot run: SIGTERM from Slurm or `timeout` waited for the
    wait (30 s and more). Python's C-level handler still writes each signal's number to the wakeup fd
    at once; a watcher thread reads it there. Nothing of the run exists yet (no folder claimed, no file
    written), so ending the process leaves nothing behind. In a thread other than the main one, where
    Python lets no one set the wakeup fd, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    done = threading.Event()
    watcher = threading.Thread(target=_end_on_signal, args=(reader, done, message), daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(previous)
        watcher.join()
        reader.close()
        writer.close()


def _end_on_signal(reader: socket.socket, done: threading.Event, message: str) -> None:
    while not done.is_set():
        if select.select([reader], [], [], 0.1)[0] and {signal.SIGTERM, signal.SIGINT} & set(reader.recv(64)):
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
            os._exit(130)


def configure_cpu_workers(workers: int | None = None, devices: int | str | None = None) -> int:
    """Ready this process for a run with `workers` and `devices` (TrainConfig's); call before JAX runs.

    Keeps malloc to one heap arena (see _one_malloc_arena) and gives JAX the CPU devices the run
    needs: settings for the whole process, which is why they belong where it starts, not on import.
    `workers` are the fused kernel's threads, parts of one call on XLA's thread pool, not devices:
    they are only checked here (TrainConfig's bound), so a large count creates no devices. Devices
    matter to a CPU mesh: `devices` = N gives N where the usable cores are at least N; None, "all"
    or more give default_cpu_devices(), unless the user already chose a count (JAX_NUM_CPU_DEVICES,
    jax_num_cpu_devices, or XLA's --xla_force_host_platform_device_count), which is kept. Returns the
    CPU device count JAX will have; once JAX has started on CPU it can no longer change, so asking
    for more devices then raises ConfigError saying how to call this in time.
    """
    from jaxgram.config import TrainConfig, usable_cores

    TrainConfig(workers=workers, devices=devices).validate()  # their one-line errors, before any work
    _one_malloc_arena()
    # More CPU devices than cores only simulate a mesh, and each costs memory and start-up time
    # (1,024 about 115 MiB; 100,000 grew past 11 GB; a mesh of 999 aborted XLA on two cores), so
    # those are the user's to ask for by JAX_NUM_CPU_DEVICES; device_mesh says so. `devices` may
    # also count accelerators, which these CPU devices are not.
    wanted = devices if isinstance(devices, int) and devices <= usable_cores() else None
    if wanted is None:
        if jax.config.jax_num_cpu_devices != -1 or _forced_host_devices():
            return _cpu_device_count_if_started() or max(jax.config.jax_num_cpu_devices, 1)
        wanted = default_cpu_devices()
    try:
        jax.config.update("jax_num_cpu_devices", wanted)
    except RuntimeError:  # JAX's backends already exist: the device count is fixed
        started_with = _cpu_device_count_if_started() or 1
        if devices == wanted and started_with < wanted and jax.default_backend() == "cpu":
            raise ConfigError(
                f"devices={wanted} is not allowed: only {started_with} CPU device(s) are available, as JAX already "
                f"started; call jaxgram.configure_cpu_workers(devices={wanted}) before any JAX computation, or set "
                f"JAX_NUM_CPU_DEVICES={wanted}") from None
        return started_with
    return wanted


def default_cpu_devices() -> int:
    """CPU devices when a run names no count (`devices` None or "all"): two, one on a one-core machine.

    The count `jaxgram train` always had by default, so that devices="all" on CPU is still a mesh of
    two; a run without a mesh trains on the first device and needs no more."""
    from jaxgram.config import usable_cores

    return min(2, usable_cores())


def _one_malloc_arena() -> None:
    """Keep glibc's malloc to one heap arena (what MALLOC_ARENA_MAX=1 does, but settable after start).

    JAX's device and dispatch threads would each grow an arena of their own, which measured
    30-40 MiB of extra peak memory on the five books with two workers, for no speed gained:
    the training loop allocates little (its hot loop is one C++ call per step).
    """
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # -8: M_ARENA_MAX in glibc's malloc.h
        except (OSError, AttributeError):
            pass  # not glibc (musl, for one): its allocator has no arenas to limit


def _forced_host_devices() -> bool:
    import os

    return "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")


def _cpu_device_count_if_started() -> int | None:
    from jax._src import xla_bridge  # the only way to ask without starting the backends

    if not xla_bridge.backends_are_initialized():
        return None
    return len(jax.local_devices(backend="cpu"))


def joined() -> bool:
    """Whether this process joined a multi-process run (initialize, or jax.distributed directly)."""
    return jax.distributed.is_initialized()


def is_primary() -> bool:
    """Process 0 writes outputs and checkpoints; the others only compute."""
    return jax.process_index() == 0


def device_mesh(devices) -> Mesh:
    """A one-axis mesh over `devices` (N or "all") of all processes' devices, in JAX's global order."""
    available = jax.devices()
    if devices == ALL_DEVICES:
        chosen = available
    elif devices > len(available):
        hint = " (on CPU, set JAX_NUM_CPU_DEVICES before JAX starts to simulate more)" if available[0].platform == "cpu" else ""
        raise ConfigError(f"devices={devices} is not allowed: only {len(available)} {available[0].platform} "
                          f"device(s) are available{hint}")
    elif jax.process_count() > 1 and devices != len(available):
        raise ConfigError(f"devices={devices} is not allowed with {jax.process_count()} processes: every process's "
                          f"devices take part, so use 'all' ({len(available)} devices)")
    else:
        chosen = available[:devices]
    return Mesh(np.asarray(chosen), (DATA_AXIS,))


def global_array(host: np.ndarray, sharding) -> jax.Array:
    """`host` (the same on every process) as one array laid out by `sharding`; each process copies only its shards."""
    host = np.asarray(host)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def to_host(array) -> np.ndarray:
    """The whole value of a (possibly multi-process) array, on every process."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        if array.sharding.is_fully_replicated:
            return np.asarray(array.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


def same_on_all_processes(value: int) -> bool:
    """Whether every process holds the same int (True in a single process)."""
    values = allgather_ints([value])
    return bool(np.all(values == values[0, 0]))


def allgather_ints(values) -> np.ndarray:
    """Each process's int64 `values` (one length on all), stacked: row p is process p's."""
    values = np.asarray(values, np.int64).reshape(1, -1)
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(values, tiled=True))
