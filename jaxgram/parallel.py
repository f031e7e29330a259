"""The ways to compile a step into `run_many(carry, centers, contexts, mask)`: many steps per call.

- `compile_steps`: one device (the default: one accelerator, or one CPU device whose fused
  kernel runs the `workers` threads); `lax.scan` over the call's steps (inputs [steps, batch, ...]).
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
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxgram import distributed
from jaxgram.config import ALL_DEVICES, TrainConfig
from jaxgram.data import noise_distribution, noise_log2_size, noise_slot_starts, noise_table
from jaxgram.distributed import DATA_AXIS, global_array, to_host
from jaxgram.init import init_shard
from jaxgram.losses import Params
from jaxgram.step import Carry, NoiseSlots


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


def compile_ahead(step_for, carry: Carry, example_call, noise_ids):
    """compile_steps's run_many compiled now for calls shaped like `example_call` (centers,
    contexts, mask), so that the training loop's clock starts after compiling, not at it."""
    shapes = [jax.ShapeDtypeStruct(inputs.shape, inputs.dtype) for inputs in example_call]
    return compile_steps(step_for).lower(carry, *shapes, noise_ids).compile()


def placed_noise_table(counts: np.ndarray, exponent: float, mesh: Mesh | None, slots: bool = False):
    """The negatives' table (data.noise_table) on the device, or replicated over `mesh`; no host
    copy kept. `slots`: as step.NoiseSlots (V entries instead of 64·V, the same draws)."""
    probabilities = noise_distribution(counts, exponent)
    table = noise_slot_starts(probabilities) if slots else noise_table(probabilities)
    placed = jnp.asarray(table) if mesh is None else global_array(table, NamedSharding(mesh, PartitionSpec()))
    return NoiseSlots(placed, noise_log2_size(len(counts))) if slots else placed


def training_devices(config: TrainConfig, kernel: str = "xla") -> list:
    """The devices train() uses outside a mesh: the first local one (one accelerator, or one CPU
    device whose fused kernel runs `workers` threads). More take `devices` (a mesh)."""
    return jax.local_devices()[:1]


# -- synchronous data parallelism on a mesh --------------------------------------------------------


def training_mesh(config: TrainConfig) -> Mesh | None:
    """The mesh of the synchronous path (`devices` set, or several processes); None: the default path."""
    if config.devices is None and jax.process_count() == 1:
        return None
    return distributed.device_mesh(ALL_DEVICES if config.devices is None else config.devices)


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

    def initial_carry(self, config: TrainConfig, init_key: jax.Array, train_key: jax.Array, optimizer) -> Carry:
        """The first step's carry, born on the mesh: each process makes only its own devices' rows
        of E and W (init.init_shard: the values init_params gives them), on those devices, padding
        rows zeros, and the optimiser's state is its init run under jit, sharded like the tables.
        The host holds a block of rows at a time, never a whole table nor a shard."""
        def born(table: str) -> jax.Array:
            return self._born_table(functools.partial(init_shard, init_key, self.vocab_size, config.dim, config.init,
                                                      table), config.dim)

        trainable = Params(born("E"), None if config.tied else born("W"))
        opt_shardings = self.shardings(jax.eval_shape(optimizer.init, trainable))
        opt_state = jax.jit(optimizer.init, out_shardings=opt_shardings)(trainable)
        return Carry(trainable, opt_state, global_array(np.asarray(train_key), self.replicated))

    def _born_table(self, make_shard, dim: int) -> jax.Array:
        """A [rows, dim] table laid out by `self.table`, each local device's shard made there by
        make_shard(start, stop, device); devices with the same rows (replicated tables) copy the first's."""
        shape, shards, made = (self.rows, dim), [], {}
        for device, index in self.table.addressable_devices_indices_map(shape).items():
            bounds = index[0].indices(self.rows)[:2]
            made[bounds] = jax.device_put(made[bounds], device) if bounds in made else make_shard(*bounds, device)
            shards.append(made[bounds])
        return jax.make_array_from_single_device_arrays(shape, self.table, shards)

    def place(self, carry: Carry) -> Carry:
        """A carry laid out on the mesh: arrays already on it (initial_carry's) stay as they are;
        host or single-device arrays (unpadded: a restored checkpoint's) are copied onto it."""
        def put(leaf):
            if isinstance(getattr(leaf, "sharding", None), NamedSharding) and leaf.sharding.mesh == self.mesh:
                return leaf
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
    batch and inserts the collectives. Per slot of the step they move the rows it touches, never
    a whole table (tests/test_parallel.py reads the compiled program): row-sharded tables are
    read by each owner looking up its rows and a sum over the mesh, and take the gathered row
    updates that fall in their own rows; replicated ones take the gathered row updates whole
    (make_step's `rows_sharding`). Host arrays go in as global arrays, each process feeding its
    own shards. `run_many.lower(...)`, as a jitted function's, gives the program for those arguments.
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

    def placed(carry, centers, contexts, mask, noise_ids):
        return carry, *(global_array(inputs, batch) for inputs in (centers, contexts, mask)), noise_ids

    def run_many(carry, centers, contexts, mask, noise_ids):
        return run(*placed(carry, centers, contexts, mask, noise_ids))

    run_many.lower = lambda *arguments: run.lower(*placed(*arguments))
    return run_many
