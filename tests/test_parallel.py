"""Which devices a run uses (one, unless `devices` asks for a mesh), and CPU workers: the fused kernel's threads."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxgram import TrainConfig, train
from jaxgram.parallel import training_devices
from jaxgram.toy import toy_sentences

# alpha 0.25: at word2vec's 0.025 this toy run's loss falls by 0.0003 an epoch, less than the number of
# negatives gensim's update skips (those equal to the centre, common among 46 words) moves it.
SMALL = TrainConfig(dim=8, window=2, negative=3, epochs=2, min_count=1, batch_size=32, seed=2, alpha=0.25)


def test_one_device_trains_whatever_the_host_has_unless_devices_asks_for_more():
    assert len(jax.local_devices()) >= 2, "the test session configures one CPU device per worker (conftest)"
    for config in (SMALL, dataclasses.replace(SMALL, workers=2), dataclasses.replace(SMALL, optimizer="adam"),
                   dataclasses.replace(SMALL, objective="softmax")):
        assert training_devices(config) == jax.local_devices()[:1]


def test_the_xla_step_is_one_device_whose_run_the_worker_count_does_not_change():
    # Before, every local device trained a replica and their changes were summed; now one device
    # trains, so the CPU worker count (the fused kernel's threads) leaves the XLA run bitwise alone.
    corpus = toy_sentences() * 5
    xla = dataclasses.replace(SMALL, kernel="xla")
    one, again, two = (train(corpus, dataclasses.replace(xla, workers=n), progress=False) for n in (1, 1, 2))
    np.testing.assert_array_equal(one.params.E, again.params.E)
    np.testing.assert_array_equal(one.params.E, two.params.E)
    np.testing.assert_array_equal(one.params.W, two.params.W)
    assert two.loss_per_epoch[-1] < two.loss_per_epoch[0]


def test_fused_workers_are_threads_of_one_call_and_walk_their_own_shares_of_the_corpus():
    from jaxgram import fused

    if not fused.available():
        pytest.fail(f"the fused kernel is not built: {fused.unavailable_reason()}")
    corpus = toy_sentences() * 5
    assert training_devices(dataclasses.replace(SMALL, workers=2), kernel="fused") == jax.local_devices()[:1]
    one, again, two = (train(corpus, dataclasses.replace(SMALL, kernel="fused", workers=n), progress=False)
                       for n in (1, 1, 2))
    # One worker reproduces a run bitwise; with two, the threads train their shares of the
    # corpus side by side (data.training_groups) and race on shared rows, as gensim's do.
    np.testing.assert_array_equal(one.params.E, again.params.E)
    np.testing.assert_array_equal(one.params.W, again.params.W)
    assert not np.array_equal(one.params.E, two.params.E)
    assert one.pairs_per_epoch == two.pairs_per_epoch
    assert two.loss_per_epoch[-1] < two.loss_per_epoch[0]
