"""Which devices a run uses, and CPU workers: the fused kernel's threads, or XLA replicas merged in a fixed order."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxgram import TrainConfig, train
from jaxgram.errors import ConfigError
from jaxgram.parallel import training_devices
from jaxgram.toy import toy_sentences

SMALL = TrainConfig(dim=8, window=2, negative=3, epochs=2, min_count=1, batch_size=32, seed=2)


def test_sparse_sgd_uses_the_workers_and_everything_else_one_device():
    assert len(jax.local_devices()) >= 2, "the test session configures one CPU device per worker (conftest)"
    assert training_devices(SMALL) == jax.local_devices()
    assert training_devices(dataclasses.replace(SMALL, workers=1)) == jax.local_devices()[:1]
    assert len(training_devices(dataclasses.replace(SMALL, optimizer="adam"))) == 1
    assert len(training_devices(dataclasses.replace(SMALL, objective="softmax"))) == 1


def test_more_workers_than_cpu_devices_is_refused_with_the_call_that_fixes_it():
    too_many = len(jax.local_devices()) + 1
    with pytest.raises(ConfigError, match=rf"workers={too_many}.*configure_cpu_workers\({too_many}\)"):
        training_devices(dataclasses.replace(SMALL, workers=too_many))


def test_xla_workers_change_the_run_but_each_count_reproduces_itself():
    corpus = toy_sentences() * 5
    xla = dataclasses.replace(SMALL, kernel="xla")
    one = [train(corpus, dataclasses.replace(xla, workers=1), progress=False) for _ in range(2)]
    two = train(corpus, dataclasses.replace(xla, workers=2), progress=False)
    np.testing.assert_array_equal(one[0].params.E, one[1].params.E)
    assert not np.array_equal(one[0].params.E, two.params.E)
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
