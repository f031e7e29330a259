"""Checkpoints of the training state: a round trip gives the same carry, and another run's checkpoint is refused."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgram import TrainConfig
from jaxgram.errors import ConfigError, DataError
from jaxgram.losses import Params
from jaxgram.step import Carry, make_optimizer
from jaxgram.train_state import History, restore_state, save_state
from jaxgram.vocab import build_vocabulary

CONFIG = TrainConfig(dim=4, min_count=1, optimizer="adam")
VOCAB = build_vocabulary([["a", "b", "c", "a"]], min_count=1)


def _carry(config: TrainConfig, replicas: int = 1, seed: int = 0) -> Carry:
    rng = np.random.default_rng(seed)
    trainable = Params(jnp.asarray(rng.normal(size=(len(VOCAB), config.dim)), jnp.float32),
                       None if config.tied else jnp.asarray(rng.normal(size=(len(VOCAB), config.dim)), jnp.float32))
    key = jax.random.PRNGKey(seed) if replicas == 1 else jax.random.split(jax.random.PRNGKey(seed), replicas)
    return Carry(trainable, make_optimizer(config, 10).init(trainable), key)


@pytest.mark.parametrize("tied", [False, True])
def test_a_saved_state_restores_exactly(tmp_path, tied):
    config = dataclasses.replace(CONFIG, tied=tied)
    saved, history = _carry(config, seed=1), History(2, [3.5, 3.0], [100, 98])
    save_state(tmp_path, saved, config, VOCAB, history)
    restored, restored_history = restore_state(tmp_path, _carry(config, seed=2), config, VOCAB)
    assert restored_history == history
    for mine, theirs in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(saved), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert (restored.trainable.W is None) == tied


def test_another_runs_checkpoint_is_refused(tmp_path):
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(1, [1.0], [10]))
    with pytest.raises(ConfigError, match=r"dim=5 \(checkpoint: 4\)"):
        restore_state(tmp_path, _carry(dataclasses.replace(CONFIG, dim=5)), dataclasses.replace(CONFIG, dim=5), VOCAB)
    with pytest.raises(DataError, match="different vocabulary"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, build_vocabulary([["a", "b", "d"]], min_count=1))
    with pytest.raises(DataError, match="1 replica.*this one has 2"):
        restore_state(tmp_path, _carry(CONFIG, replicas=2), CONFIG, VOCAB)


def test_history_records_each_epoch():
    history = History()
    history.record(2.0, 50)
    history.record(1.5, 49)
    assert history == History(2, [2.0, 1.5], [50, 49])
