"""Parameter initialisation (pure functions of an explicit key)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgram.losses import Params

# Rows drawn per block. Drawing a [V, D] table in one call holds the random bits and each
# arithmetic step as V x D temporaries (they took the run's peak to 2.5x the tables' size at
# V = 173k, D = 300); a block at a time, written into the table in place, holds one block.
ROWS_PER_DRAW = 8192


def init_params(key: jax.Array, vocab_size: int, dim: int, scheme: str = "word2vec") -> Params:
    """`word2vec` (word2vec.c's, as in the Dostoevsky article): E ~ uniform(-0.5, 0.5) / D, W = 0.

    `gensim` (gensim 4's): E ~ uniform(-1, 1) / D, twice word2vec's range, W = 0.
    `glorot`: both tables Glorot-uniform.

    word2vec starts W at zero so the first updates of E come only from true contexts.
    """
    draws = _table_draws(key, vocab_size, dim, scheme)
    return Params(_whole_table(draws["E"], vocab_size, dim), _whole_table(draws["W"], vocab_size, dim))


def _whole_table(draw, vocab_size: int, dim: int) -> jax.Array:
    if draw is None:
        return jnp.zeros((vocab_size, dim), jnp.float32)
    table_key, low, high = draw
    return uniform_rows(table_key, vocab_size, dim, low, high)


def init_rows(key: jax.Array, vocab_size: int, dim: int, scheme: str, table: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of init_params(key, vocab_size, dim, scheme)'s `table` ("E" or "W"), as NumPy,
    drawing only the blocks that hold them: a process draws the rows its devices own and nothing else.

    Drawn on the host's CPU device, as a mesh's tables always were (an accelerator may round
    the uniform's arithmetic otherwise).
    """
    draw = _table_draws(key, vocab_size, dim, scheme)[table]
    rows = np.zeros((stop - start, dim), np.float32)
    if draw is None or start >= stop:
        return rows
    table_key, low, high = draw
    block = min(ROWS_PER_DRAW, vocab_size)
    last = (vocab_size - 1) // block
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        for index in range(_block_of(start, block, vocab_size), _block_of(stop - 1, block, vocab_size) + 1):
            first = _block_start(index, block, vocab_size)
            # A block's rows run to where the next block starts over them (the last one's: to V).
            end = vocab_size if index == last else _block_start(index + 1, block, vocab_size)
            lo, hi = max(start, first), min(stop, end)
            values = _draw_block(table_key, index, block, dim, jnp.float32(low), jnp.float32(high))
            rows[lo - start:hi - start] = np.asarray(values)[lo - first:hi - first]
    return rows


def init_shard(key: jax.Array, vocab_size: int, dim: int, scheme: str, table: str, start: int, stop: int,
               device) -> jax.Array:
    """Rows [start, stop) of `table` as init_rows gives them, rows from V on zeros (a mesh's padding),
    made on `device` a block at a time: the host holds one block of rows, never the shard."""
    length = stop - start
    with jax.default_device(device):  # made there: jnp.zeros(device=...) makes it on the default device, then copies
        shard = jnp.zeros((length, dim), jnp.float32)
    if _table_draws(key, vocab_size, dim, scheme)[table] is None or length == 0:
        return shard
    piece = min(ROWS_PER_DRAW, length)
    for first in range(0, length, piece):
        at = start + _block_start(first // piece, piece, length)  # every piece the same shape: one compiled write
        rows = init_rows(key, vocab_size, dim, scheme, table, min(at, vocab_size), min(at + piece, vocab_size))
        rows = np.pad(rows, ((0, piece - len(rows)), (0, 0))) if len(rows) < piece else rows
        shard = _write_rows(shard, jax.device_put(rows, device), at - start)
    return shard


def _table_draws(key: jax.Array, vocab_size: int, dim: int, scheme: str) -> dict:
    """Each table's draw under `scheme`: (its key, low, high) of a uniform, or None for a table of zeros."""
    key_e, key_w = jax.random.split(key)
    if scheme in ("word2vec", "gensim"):
        spread = 1.0 if scheme == "word2vec" else 2.0
        return {"E": (key_e, -0.5 * spread / dim, 0.5 * spread / dim), "W": None}
    if scheme == "glorot":
        limit = float(np.sqrt(6.0 / (vocab_size + dim)))  # Glorot's bound for a [V, D] matrix
        return {"E": (key_e, -limit, limit), "W": (key_w, -limit, limit)}
    raise ValueError(f"init={scheme!r} is not allowed: choose word2vec, gensim or glorot")


def _block_start(index: int, block: int, rows: int) -> int:
    """Where block `index` is written: the last starts where it still fits, over the end of the one before."""
    return min(index * block, rows - block)


def _block_of(row: int, block: int, rows: int) -> int:
    """The block whose values `row` ends up holding (the last one written over it)."""
    return (rows - 1) // block if row >= rows - block else row // block


def uniform_rows(key: jax.Array, rows: int, dim: int, low: float, high: float) -> jax.Array:
    """float32 [rows, dim] uniform on [low, high): block i (ROWS_PER_DRAW rows) drawn from fold_in(key, i).

    The draw's program depends on D alone, so a new vocabulary size compiles only the small
    in-place write. The last block starts where it still fits, so it draws again over the
    end of the one before: every row is still one uniform draw.
    """
    block = min(ROWS_PER_DRAW, rows)
    bounds = jnp.float32(low), jnp.float32(high)
    table = jnp.zeros((rows, dim), jnp.float32)
    for index in range(-(-rows // block)):
        table = _write_rows(table, _draw_block(key, index, block, dim, *bounds), _block_start(index, block, rows))
    return table


@functools.partial(jax.jit, static_argnums=(2, 3))
def _draw_block(key: jax.Array, index, block: int, dim: int, low, high) -> jax.Array:
    return jax.random.uniform(jax.random.fold_in(key, index), (block, dim), jnp.float32, low, high)


@functools.partial(jax.jit, donate_argnums=0)
def _write_rows(table: jax.Array, values: jax.Array, start) -> jax.Array:
    return jax.lax.dynamic_update_slice(table, values, (start, 0))


def host_init_params(key: jax.Array, vocab_size: int, dim: int, scheme: str = "word2vec") -> Params:
    """init_params's tables as NumPy arrays on the host. It runs the same compiled programs a run
    already used (new ones would cost a compile's memory at the end of a run), and word2vec's (and
    gensim's) all-zero W becomes a NumPy zeros array, which the OS maps lazily."""
    tables = init_params(key, vocab_size, dim, scheme)
    E = np.asarray(tables.E)
    if scheme in ("word2vec", "gensim"):
        return Params(E, np.zeros((vocab_size, dim), np.float32))
    return Params(E, np.asarray(tables.W))
