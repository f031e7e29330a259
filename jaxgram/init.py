"""Parameter initialisation (pure functions of an explicit key)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgram.losses import Params


# Compiled, so drawing E is one fused loop: eagerly, the random bits, the floats and each
# arithmetic step would each hold a V x D temporary (a quarter of a GB apiece at V = 1M, D = 100).
@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def init_params(key: jax.Array, vocab_size: int, dim: int, scheme: str = "word2vec") -> Params:
    """`word2vec` (word2vec.c's, as in the Dostoevsky article): E ~ uniform(-0.5, 0.5) / D, W = 0.

    `gensim` (gensim 4's): E ~ uniform(-1, 1) / D, twice word2vec's range, W = 0.
    `glorot`: both tables Glorot-uniform.

    word2vec starts W at zero so the first updates of E come only from true contexts.
    """
    key_e, key_w = jax.random.split(key)
    if scheme in ("word2vec", "gensim"):
        spread = 1.0 if scheme == "word2vec" else 2.0
        E = (jax.random.uniform(key_e, (vocab_size, dim), jnp.float32) - 0.5) * spread / dim
        W = jnp.zeros((vocab_size, dim), jnp.float32)
    elif scheme == "glorot":
        glorot = jax.nn.initializers.glorot_uniform()
        E = glorot(key_e, (vocab_size, dim), jnp.float32)
        W = glorot(key_w, (vocab_size, dim), jnp.float32)
    else:
        raise ValueError(f"init={scheme!r} is not allowed: choose word2vec, gensim or glorot")
    return Params(E, W)


def host_init_params(key: jax.Array, vocab_size: int, dim: int, scheme: str = "word2vec") -> Params:
    """init_params's tables as NumPy arrays on the host. It runs the same compiled init_params a
    run already used (a second program would cost a compile's memory at the end of a run), and
    word2vec's (and gensim's) all-zero W becomes a NumPy zeros array, which the OS maps lazily."""
    tables = init_params(key, vocab_size, dim, scheme)
    E = np.asarray(tables.E)
    if scheme in ("word2vec", "gensim"):
        return Params(E, np.zeros((vocab_size, dim), np.float32))
    return Params(E, np.asarray(tables.W))
