"""The ways to compile a step into `run_many(carry, centers, contexts, mask)`: many steps per call.

- `compile_steps`: one device; `lax.scan` over the call's steps (inputs [steps, batch, ...]).
- `compile_replicated`: CPU workers. Sparse SGD runs data-parallel replicas, one per CPU
  device (`TrainConfig.workers` of them), each on its own share of the call's batches; at
  the end of the call their table changes are summed (Hogwild-style, like gensim's workers,
  but merged once per call, in a fixed order, so a seed reproduces bitwise). XLA's CPU
  scatter is single-threaded, so this is what uses more than one core.
- `compile_sharded`: synchronous data parallelism on a mesh (`devices` = N or "all", and any
  multi-process run) with JAX's own sharding: each step's batch (`batch_size` pairs per
  device) split across a one-axis Mesh, E and W replicated or, with `shard_tables`,
  row-sharded (V padded to a multiple of the device count), and the same pure step jitted
  once for the whole mesh; XLA's SPMD partitioner inserts the collectives. Every step sees
  every device's updates, so the result depends on the device count (deterministically)
  but not on whether tables are sharded, up to float rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxgram import distributed
from jaxgram.config import ALL_DEVICES, TrainConfig
from jaxgram.distributed import DATA_AXIS, global_array, to_host
from jaxgram.errors import ConfigError
from jaxgram.step import Carry


def compile_steps(step_for):
    """run_many(carry, centers, contexts, mask, noise_ids): many steps per call via lax.scan,
    inputs [steps, batch, ...] (an epoch's tail is padded); `step_for(noise_ids)` is the step.

    The noise table is an argument of the compiled call, not a constant closed over by the
    step: XLA copies a constant into the program while compiling (at V = 100k the table is
    32 MB, and compiling it in cost ~200 MB of peak memory).
    """

    # The carry is donated: the tables are updated in place instead of copied every call.
    @functools.partial(jax.jit, donate_argnums=0)
    def run_many(carry, centers, contexts, mask, noise_ids):
        return jax.lax.scan(step_for(noise_ids), carry, (centers, contexts, mask))

    return run_many


def compile_replicated(step_for, devices):
    """run_many over data-parallel replicas, one per device; inputs [replicas, steps, batch, ...].

    Every replica starts the call from the same tables and key block row; at the end the
    replicas' table changes are summed into one set of tables again.
    """
    mesh = Mesh(np.asarray(devices), ("replica",))
    split, whole = PartitionSpec("replica"), PartitionSpec()
    carry_spec = Carry(whole, whole, split)

    def run(carry, centers, contexts, mask, noise_ids):
        start = carry.trainable
        # Inside the call each replica's tables drift apart ("varying" across the mesh).
        local = Carry(jax.lax.pcast(start, ("replica",), to="varying"), carry.opt_state, carry.key[0])
        carry, totals = jax.lax.scan(step_for(noise_ids), local, (centers[0], contexts[0], mask[0]))
        merged = jax.tree_util.tree_map(lambda before, after: before + jax.lax.psum(after - before, "replica"),
                                        start, carry.trainable)
        return carry._replace(trainable=merged, key=carry.key[None]), jax.lax.psum(totals, "replica")

    return jax.jit(jax.shard_map(run, mesh=mesh, in_specs=(carry_spec, split, split, split, whole),
                                 out_specs=(carry_spec, whole)), donate_argnums=0)


def training_devices(config: TrainConfig, kernel: str = "xla") -> list:
    """The devices train() replicates over: `workers` CPU devices (default: all local ones) for
    sparse SGD negative sampling with the XLA step; the first device for everything else (the
    fused kernel runs its workers as threads of one call)."""
    devices = jax.local_devices()
    if config.optimizer != "sgd" or config.objective != "ns" or kernel == "fused":
        return devices[:1]
    if config.workers is None or devices[0].platform != "cpu":
        return devices
    if config.workers > len(devices):
        raise ConfigError(
            f"workers={config.workers} is not allowed: JAX has {len(devices)} CPU device(s); call "
            f"jaxgram.configure_cpu_workers({config.workers}) before any JAX computation (the CLI does), "
            f"or set JAX_NUM_CPU_DEVICES={config.workers}")
    return devices[:config.workers]


# -- synchronous data parallelism on a mesh --------------------------------------------------------


def training_mesh(config: TrainConfig) -> Mesh | None:
    """The mesh of the synchronous path (`devices` set, or several processes); None: the default path."""
    if config.devices is None and jax.process_count() == 1:
        return None
    return distributed.training_mesh(ALL_DEVICES if config.devices is None else config.devices)


@dataclass(frozen=True)
class MeshLayout:
    """How the synchronous path lays the carry and the inputs out on a mesh.

    Tables (E, W and per-entry optimiser state, all [V, D]) are replicated, or row-sharded
    with V padded to a multiple of the mesh size (padding rows are never indexed: every id is
    < V, and they are stripped from what comes back); everything else is replicated; the
    batch axis of the inputs [steps, batch, ...] is split across the mesh.
    """

    mesh: Mesh
    vocab_size: int
    shard_tables: bool

    @property
    def rows(self) -> int:
        return -(-self.vocab_size // self.mesh.size) * self.mesh.size if self.shard_tables else self.vocab_size

    @property
    def table(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(DATA_AXIS, None) if self.shard_tables else PartitionSpec())

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def batch(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(None, DATA_AXIS))

    def _is_table(self, leaf) -> bool:
        return np.ndim(leaf) == 2 and np.shape(leaf)[0] in (self.vocab_size, self.rows)

    def shardings(self, carry: Carry):
        return jax.tree_util.tree_map(lambda leaf: self.table if self._is_table(leaf) else self.replicated, carry)

    def place(self, carry: Carry) -> Carry:
        """A carry of host or single-device arrays (unpadded), laid out on the mesh."""
        def put(leaf):
            host = np.asarray(leaf)
            if not self._is_table(host):
                return global_array(host, self.replicated)
            return global_array(np.pad(host, ((0, self.rows - len(host)), (0, 0))), self.table)

        return jax.tree_util.tree_map(put, carry)

    def fetch(self, carry: Carry) -> Carry:
        """The carry as unpadded NumPy arrays on every process (all processes must call it)."""
        return jax.tree_util.tree_map(lambda leaf: to_host(leaf)[:self.vocab_size] if self._is_table(leaf)
                                      else to_host(leaf), carry)


def compile_sharded(step_for, layout: MeshLayout, carry: Carry):
    """run_many for synchronous data parallelism: one `step` over the whole mesh, inputs [steps, batch, ...].

    The step is the same pure function as on one device; jit's SPMD partitioner splits the
    batch and inserts the collectives (gathering rows of sharded tables, summing each step's
    row updates). Host arrays go in as global arrays, each process feeding its own shards.
    """
    shardings = layout.shardings(carry)

    def run(carry, centers, contexts, mask, noise_ids):
        step = step_for(noise_ids)

        def constrained(carry, batch):
            carry, total = step(carry, batch)
            # Every step hands the next the tables in the same layout (no resharding inside the scan).
            return jax.lax.with_sharding_constraint(carry, shardings), total

        return jax.lax.scan(constrained, carry, (centers, contexts, mask))

    batch = layout.batch
    run = jax.jit(run, in_shardings=(shardings, batch, batch, batch, layout.replicated),
                  out_shardings=(shardings, layout.replicated), donate_argnums=0)

    def run_many(carry, centers, contexts, mask, noise_ids):
        return run(carry, *(global_array(inputs, batch) for inputs in (centers, contexts, mask)), noise_ids)

    return run_many
