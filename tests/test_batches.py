"""The batch plan and the epoch stream: shapes, padding, and epochs that replay from (seed, epoch)."""

import concurrent.futures
import dataclasses

import numpy as np
import pytest

from jaxgram import TrainConfig
from jaxgram.batches import (
    EPOCH_END,
    STEPS_PER_CALL,
    EpochSource,
    call_stream,
    chunk_calls,
    items_per_step,
    pair_count,
    plan_batches,
    prefetched,
    training_streams,
)
from jaxgram.data import corpus_chunks, keep_probabilities

CONFIG = TrainConfig(window=3, batch_size=64, seed=5, sample=0.0)


def test_streams_are_the_workers_and_large_batched_steps_take_more():
    two = dataclasses.replace(CONFIG, workers=2)
    # The fused kernel walks each share pair by pair, as gensim's workers do: one share per worker.
    assert training_streams(two, centres_per_step=2048, kernel="fused") == 2
    assert training_streams(dataclasses.replace(two, workers=1), 170, kernel="fused") == 1
    # The batched step holds at most CONSECUTIVE_CENTRES of one share in a step.
    assert training_streams(two, centres_per_step=2048) == 2048 // 85
    assert training_streams(two, centres_per_step=170) == 2


def test_a_step_takes_about_batch_size_pairs_worth_of_centres():
    assert items_per_step(CONFIG) == 64 // 4  # a shrinking window of 3 averages 2 * 2 contexts
    assert items_per_step(dataclasses.replace(CONFIG, shrink_window=False)) == 64 // 6
    assert items_per_step(dataclasses.replace(CONFIG, objective="softmax")) == 32
    assert items_per_step(dataclasses.replace(CONFIG, batch_size=1)) == 1


@pytest.mark.parametrize("centres, replicas, devices", [(1, 1, 1), (1000, 1, 1), (100_000, 2, 1), (5000, 1, 4)])
def test_the_plan_covers_an_epoch_in_calls_of_one_shape(centres, replicas, devices):
    plan = plan_batches(CONFIG, centres, replicas, devices)
    assert plan.batch_size == items_per_step(CONFIG) * devices
    assert 1 <= plan.steps_per_call <= STEPS_PER_CALL and plan.steps_per_epoch % plan.steps_per_call == 0
    assert plan.steps_per_epoch * plan.batch_size * replicas >= centres
    # No more than one call of padding per epoch.
    assert (plan.steps_per_epoch - plan.steps_per_call) * plan.batch_size * replicas < centres
    assert plan.total_steps == plan.steps_per_epoch * CONFIG.epochs
    assert plan.shape == ((plan.steps_per_call, plan.batch_size) if replicas == 1
                          else (replicas, plan.steps_per_call, plan.batch_size))


@pytest.mark.parametrize("replicas", [1, 2])
def test_calls_hold_every_centre_once_in_order_and_mask_the_padding(replicas):
    source = _source(CONFIG, 10_000)
    groups = next(source.groups(0))
    everything = groups.block(0, len(groups))
    plan = plan_batches(CONFIG, 300, replicas, 1)
    calls = list(chunk_calls(plan, groups))
    assert all(c.shape == plan.shape and x.shape == (*plan.shape, 6) and m.shape == plan.shape for (c, x, m), _ in calls)
    kept = np.concatenate([m.reshape(-1) for (_, _, m), _ in calls]) > 0
    assert kept.sum() == len(groups) and kept[:len(groups)].all()
    np.testing.assert_array_equal(np.concatenate([c.reshape(-1) for (c, _, _), _ in calls])[kept], everything[0])
    contexts = np.concatenate([x.reshape(-1, 6) for (_, x, _), _ in calls])
    np.testing.assert_array_equal(contexts[kept], everything[1])
    assert (contexts[~kept] == -1).all()  # padding rows have no context: they train nothing
    assert sum(pairs for _, pairs in calls) == pair_count(everything[1]) == np.count_nonzero(everything[1] >= 0)


def _source(config: TrainConfig, chunk_tokens: int) -> EpochSource:
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 30, 3000).astype(np.int32)
    ids[rng.random(3000) < 0.1] = -1  # sentence boundaries
    counts = np.bincount(ids[ids >= 0], minlength=30)

    def read(start, stop):
        return ids[start:stop]

    return EpochSource(read, corpus_chunks(read, len(ids), chunk_tokens), keep_probabilities(counts, config.sample),
                       config)


def _flat(chunks):
    return [array for groups in chunks for array in groups]


def test_an_epoch_replays_from_seed_and_epoch_alone():
    source = _source(CONFIG, 700)
    assert len(source.chunks) > 1
    first, again = _flat(g.block(0, len(g)) for g in source.groups(1)), _flat(g.block(0, len(g)) for g in source.groups(1))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    other_epoch = _flat(g.block(0, len(g)) for g in source.groups(2))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other_epoch))


def test_a_stream_that_started_epoch_zero_equals_a_fresh_one():
    source = _source(CONFIG, 700)
    plan = plan_batches(CONFIG, 300, 1, 1)
    epoch0 = source.groups(0)
    started = ([next(epoch0)], epoch0)

    def calls(stream):
        return [item if item is EPOCH_END else item[0][1] for item in stream]

    resumed, fresh = calls(call_stream(source, plan, 0, started)), calls(call_stream(source, plan, 0))
    assert len(resumed) == len(fresh) and sum(item is EPOCH_END for item in resumed) == plan.epochs
    assert all(a is b or np.array_equal(a, b) for a, b in zip(resumed, fresh))
    assert started[0] == []  # the stream let go of the chunk it was handed
    later = calls(call_stream(source, plan, 2))
    assert sum(item is EPOCH_END for item in later) == plan.epochs - 2


def test_prefetched_yields_everything_in_order():
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        assert list(prefetched(iter(range(50)), executor)) == list(range(50))
        assert list(prefetched([], executor)) == []
        assert list(prefetched([1, None, 2], executor)) == [1, None, 2]  # None is an item, not the end
