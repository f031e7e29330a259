"""One training step: the sparse row update equals the dense one, and a compiled call does not recompile."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgram import TrainConfig
from jaxgram.data import noise_table
from jaxgram.init import init_params
from jaxgram.losses import Params
from jaxgram.parallel import compile_steps
from jaxgram.step import Carry, make_optimizer, make_step, negative_sampler, optimizer_step_count

SMALL = TrainConfig(dim=16, window=3, negative=4, epochs=3, min_count=1, sample=1e-2, batch_size=64, seed=3)


def _carry_and_batch(config, vocab_size=30, batch=32):
    key = jax.random.PRNGKey(0)
    params = init_params(key, vocab_size, config.dim, "glorot")
    trainable = Params(params.E, None if config.tied else params.W)
    rng = np.random.default_rng(0)
    centers = jnp.asarray(rng.integers(0, vocab_size, (4, batch)), jnp.int32)
    contexts = jnp.asarray(rng.integers(0, vocab_size, (4, batch)), jnp.int32)
    mask = jnp.ones((4, batch), jnp.float32).at[-1, batch // 2:].set(0.0)
    noise_ids = jnp.asarray(noise_table(np.full(vocab_size, 1 / vocab_size)))
    return trainable, (centers, contexts, mask), noise_ids


@pytest.mark.parametrize("objective, tied", [("ns", False), ("softmax", False), ("ns", True)])
def test_sparse_row_update_equals_dense_update(objective, tied):
    config = dataclasses.replace(SMALL, objective=objective, tied=tied)
    trainable, batch, cdf = _carry_and_batch(config)
    optimizer = make_optimizer(config, total_steps=10)
    results = []
    for sparse in (True, False):
        run_many = compile_steps(make_step(config, optimizer, cdf, sparse=sparse))
        carry = Carry(trainable, optimizer.init(trainable), jax.random.PRNGKey(1))
        carry, totals = run_many(carry, *batch)
        results.append((carry.trainable, totals))
    for leaf_sparse, leaf_dense in zip(jax.tree_util.tree_leaves(results[0]), jax.tree_util.tree_leaves(results[1])):
        np.testing.assert_allclose(leaf_sparse, leaf_dense, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_second_call_does_not_recompile(optimizer):
    config = dataclasses.replace(SMALL, optimizer=optimizer)
    trainable, (centers, contexts, mask), cdf = _carry_and_batch(config)
    opt = make_optimizer(config, total_steps=100)
    run_many = compile_steps(make_step(config, opt, cdf))
    carry = Carry(trainable, opt.init(trainable), jax.random.PRNGKey(1))
    carry, _ = run_many(carry, centers, contexts, mask)
    carry, _ = run_many(carry, centers[::-1], contexts, mask)
    assert run_many._cache_size() == 1


def test_negatives_come_from_the_noise_table_k_per_centre():
    noise_ids = jnp.asarray(np.repeat(np.array([3, 7], np.int32), 4))  # 8 slots: words 3 and 7 only
    sample = negative_sampler(noise_ids, 5)
    drawn = np.asarray(sample(jax.random.PRNGKey(0), jnp.zeros(1000, jnp.int32)))
    assert drawn.shape == (1000, 5) and set(np.unique(drawn)) == {3, 7}
    assert 0.45 < np.mean(drawn == 3) < 0.55
    with pytest.raises(ValueError, match="power-of-two"):
        negative_sampler(jnp.arange(6), 5)


def test_the_step_counter_is_found_in_the_optimizer_state():
    trainable = Params(jnp.zeros((4, 2)), None)
    for name in ("sgd", "adam"):
        optimizer = make_optimizer(dataclasses.replace(SMALL, optimizer=name), total_steps=10)
        assert int(optimizer_step_count(optimizer.init(trainable))) == 0
    assert optimizer_step_count(()) is None
