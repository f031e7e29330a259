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
    """`word2vec` (word2vec's, as in the Dostoevsky article): E ~ uniform(-0.5, 0.5) / D, W = 0.

    `glorot`: both tables Glorot-uniform.

    word2vec starts W at zero so the first updates of E come only from true contexts.
    """
    key_e, key_w = jax.random.split(key)
    if scheme == "word2vec":
        E = (jax.random.uniform(key_e, (vocab_size, dim), jnp.float32) - 0.5) / dim
        W = jnp.zeros((vocab_size, dim), jnp.float32)
    elif scheme == "glorot":
        glorot = jax.nn.initializers.glorot_uniform()
        E = glorot(key_e, (vocab_size, dim), jnp.float32)
        W = glorot(key_w, (vocab_size, dim), jnp.float32)
    else:
        raise ValueError(f"init={scheme!r} is not allowed: choose word2vec or glorot")
    return Params(E, W)


def host_init_params(key: jax.Array, vocab_size: int, dim: int, scheme: str = "word2vec") -> Params:
    """init_params's tables as NumPy arrays, computed one table at a time on the CPU: word2vec's
    all-zero W is a NumPy zeros array, which the OS maps lazily, so it costs no memory until written."""
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        E = np.asarray(_one_table(key, vocab_size, dim, scheme, "E"))
        if scheme == "word2vec":
            return Params(E, np.zeros((vocab_size, dim), np.float32))
        return Params(E, np.asarray(_one_table(key, vocab_size, dim, scheme, "W")))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _one_table(key: jax.Array, vocab_size: int, dim: int, scheme: str, which: str) -> jax.Array:
    return getattr(init_params(key, vocab_size, dim, scheme), which)  # the other table is never computed
