"""Checkpoints of the training state: a round trip gives the same carry, and another run's checkpoint is refused."""

import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgram import TrainConfig, checkpoint
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
    # An older jaxgram's run of 2 CPU replicas saved one random key per replica.
    save_state(tmp_path, _carry(CONFIG, replicas=2), CONFIG, VOCAB, History(1, [1.0], [10]))
    with pytest.raises(DataError, match=r"key of shape \(2, 2\), expected \(2,\).*several CPU replicas"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)


def test_history_records_each_epoch():
    history = History()
    history.record(2.0, 50)
    history.record(1.5, 49)
    assert history == History(2, [2.0, 1.5], [50, 49])


def test_epochs_may_change_on_resume_but_not_below_the_epochs_done(tmp_path, caplog):
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(2, [3.5, 3.0], [100, 98]))
    for epochs in (2, 3, 8):  # fewer than planned (5) but not than done, or more
        longer = dataclasses.replace(CONFIG, epochs=epochs)
        caplog.clear()
        _, history = restore_state(tmp_path, _carry(longer), longer, VOCAB)
        assert history.epochs_done == 2
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "epochs=5 with epochs=" + str(epochs) in warning.getMessage()
    caplog.clear()
    restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)
    assert not caplog.records  # the planned epochs: nothing to warn about
    shorter = dataclasses.replace(CONFIG, epochs=1)
    with pytest.raises(ConfigError, match=r"^epochs=1 is fewer than the 2 epochs already trained .*epochs >= 2$"):
        restore_state(tmp_path, _carry(shorter), shorter, VOCAB)
    other = dataclasses.replace(CONFIG, epochs=8, seed=9)
    with pytest.raises(ConfigError, match=r": seed=9 \(checkpoint: 1\)$"):  # epochs may change; seed may not
        restore_state(tmp_path, _carry(other), other, VOCAB)


def test_a_checkpoint_with_a_field_this_config_lacks_is_refused(tmp_path):
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(1, [1.0], [10]))
    saved = checkpoint.load(tmp_path)
    meta = {k: v for k, v in saved.meta.items() if k not in ("arrays_file", "arrays_sha256")}
    meta["config"] = {**meta["config"], "retired_option": 3}
    checkpoint.save(tmp_path, saved.arrays, meta)
    with pytest.raises(ConfigError, match="retired_option \\(only in the checkpoint\\)"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)
