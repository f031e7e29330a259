"""The batch plan and the epoch stream: shapes, padding, and epochs that replay from (seed, epoch)."""

import concurrent.futures
import dataclasses

import numpy as np
import pytest

from jaxgram import TrainConfig
from jaxgram.batches import (
    EPOCH_END,
    MAX_ROW_HITS,
    STEPS_PER_CALL,
    EpochSource,
    busiest_row_share,
    call_stream,
    centres_per_step,
    chunk_calls,
    items_per_step,
    pair_count,
    plan_batches,
    prefetched,
    training_streams,
    widest_lockstep,
)
from jaxgram.data import corpus_chunks, keep_probabilities, noise_distribution
from jaxgram.errors import ConfigError

CONFIG = TrainConfig(window=3, batch_size=64, seed=5, sample=0.0)


def test_streams_are_the_fused_workers_or_the_xla_steps_centres():
    two = dataclasses.replace(CONFIG, workers=2)
    # The fused kernel walks each share pair by pair, as gensim's workers do: one share per worker.
    assert training_streams(two, step_centres=2048, kernel="fused") == 2
    assert training_streams(dataclasses.replace(two, workers=1), 170, kernel="fused") == 1
    # The XLA step trains one centre of each share side by side: a share per centre of the step.
    assert training_streams(two, step_centres=2048) == 2048
    assert training_streams(two, step_centres=170) == 170


def test_the_lockstep_width_is_bounded_by_the_busiest_row_of_the_vocabulary():
    counts = np.array([1000, 500, 100, 10, 10])
    keep_prob, noise = np.ones(5), noise_distribution(counts, 0.75)
    share = busiest_row_share(counts, keep_prob, noise, negative=5)
    assert share == pytest.approx(1000 / 1620 + 5 * noise[0])
    widest = widest_lockstep(counts, keep_prob, noise, negative=5)
    assert widest == int(MAX_ROW_HITS / share)
    # A default is narrowed to the widest and split over the devices; a width the user chose is per
    # device, and refused when all devices' together pass the widest.
    wide = dataclasses.replace(CONFIG, batch_size=None)
    assert centres_per_step(wide, "gpu", devices=1, widest=widest) == widest
    assert centres_per_step(wide, "gpu", devices=2, widest=widest) == widest // 2
    assert centres_per_step(wide, "cpu", devices=1, widest=10_000) == items_per_step(wide, "cpu")
    assert centres_per_step(wide, "cpu", devices=2) == items_per_step(wide, "cpu") // 2  # one step, split
    assert centres_per_step(CONFIG, "cpu", devices=1, widest=16) == 16
    with pytest.raises(ConfigError, match=rf"batch_size=64 is too wide.*widest that fits is batch_size={15 * 4}$"):
        centres_per_step(CONFIG, "cpu", devices=1, widest=15)
    with pytest.raises(ConfigError, match=rf"widest that fits is batch_size={7 * 4} per device$"):
        centres_per_step(CONFIG, "cpu", devices=2, widest=15)


def test_a_step_takes_about_batch_size_pairs_worth_of_centres():
    assert items_per_step(CONFIG) == 64 // 4  # a shrinking window of 3 averages 2 * 2 contexts
    assert items_per_step(dataclasses.replace(CONFIG, shrink_window=False)) == 64 // 6
    assert items_per_step(dataclasses.replace(CONFIG, objective="softmax")) == 32
    assert items_per_step(dataclasses.replace(CONFIG, batch_size=1)) == 1


@pytest.mark.parametrize("centres, devices", [(1, 1), (1000, 1), (100_000, 1), (5000, 4)])
def test_the_plan_covers_an_epoch_in_calls_of_one_shape(centres, devices):
    plan = plan_batches(CONFIG, centres, items_per_step(CONFIG) * devices)
    assert plan.batch_size == items_per_step(CONFIG) * devices
    assert 1 <= plan.steps_per_call <= STEPS_PER_CALL and plan.steps_per_epoch % plan.steps_per_call == 0
    assert plan.steps_per_epoch * plan.batch_size >= centres
    # No more than one call of padding per epoch.
    assert (plan.steps_per_epoch - plan.steps_per_call) * plan.batch_size < centres
    assert plan.total_steps == plan.steps_per_epoch * CONFIG.epochs
    assert plan.shape == (plan.steps_per_call, plan.batch_size)


def test_calls_hold_every_centre_once_in_order_and_mask_the_padding():
    source = _source(CONFIG, 10_000)
    groups = next(source.groups(0))
    everything = groups.block(0, len(groups))
    plan = plan_batches(CONFIG, 300, items_per_step(CONFIG))
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
    plan = plan_batches(CONFIG, 300, items_per_step(CONFIG))
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
