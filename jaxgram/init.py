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
    key_e, key_w = jax.random.split(key)
    if scheme in ("word2vec", "gensim"):
        spread = 1.0 if scheme == "word2vec" else 2.0
        E = uniform_rows(key_e, vocab_size, dim, -0.5 * spread / dim, 0.5 * spread / dim)
        W = jnp.zeros((vocab_size, dim), jnp.float32)
    elif scheme == "glorot":
        limit = float(np.sqrt(6.0 / (vocab_size + dim)))  # Glorot's bound for a [V, D] matrix
        E = uniform_rows(key_e, vocab_size, dim, -limit, limit)
        W = uniform_rows(key_w, vocab_size, dim, -limit, limit)
    else:
        raise ValueError(f"init={scheme!r} is not allowed: choose word2vec, gensim or glorot")
    return Params(E, W)


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
        table = _write_rows(table, _draw_block(key, index, block, dim, *bounds), min(index * block, rows - block))
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
