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
    centres_per_step,
    epoch_calls,
    expected_centres,
    items_per_step,
    pair_count,
    plan_batches,
    planned_centres,
    prefetched,
    training_streams,
    widest_centres,
)
from jaxgram.data import corpus_chunks, keep_probabilities, noise_distribution
from jaxgram.errors import ConfigError
from jaxgram.staleness import STALE_BUDGET

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
    config = dataclasses.replace(CONFIG, batch_size=None, negative=5)
    noise = noise_distribution(counts, 0.75)
    widest = widest_centres(config, counts)
    assert widest == int(STALE_BUDGET / config.alpha / (1000 / 1620 + 5 * noise[0]))
    # A higher alpha, or tied tables (the context's row is the same row), narrow it.
    assert widest_centres(dataclasses.replace(config, alpha=4 * config.alpha), counts) == pytest.approx(widest / 4, abs=1)
    slow = dataclasses.replace(config, alpha=0.01)  # tied tables at 0.025 are refused on so skewed a vocabulary
    assert widest_centres(dataclasses.replace(slow, tied=True), counts) < widest_centres(slow, counts)
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


@pytest.mark.parametrize("chunk_tokens", [10_000, 700, 100])  # one chunk; chunks of about 2 and 1/3 of a call
def test_calls_hold_every_centre_once_in_order_and_pad_only_the_epochs_last(chunk_tokens):
    source = _source(CONFIG, chunk_tokens)
    everything = [np.concatenate(arrays) for arrays in zip(*(g.block(0, len(g)) for g in source.groups(0)))]
    plan = plan_batches(CONFIG, 300, items_per_step(CONFIG))
    calls = list(epoch_calls(plan, source.groups(0)))
    assert all(c.shape == plan.shape and x.shape == (*plan.shape, 6) and m.shape == plan.shape for (c, x, m), _ in calls)
    kept = np.concatenate([m.reshape(-1) for (_, _, m), _ in calls]) > 0
    # The centres a chunk leaves short of a call go on in the next chunk's first call: only the last call is padded.
    assert kept.sum() == len(everything[0]) and kept[:len(everything[0])].all()
    assert len(calls) == -(-len(everything[0]) // plan.per_call)
    np.testing.assert_array_equal(np.concatenate([c.reshape(-1) for (c, _, _), _ in calls])[kept], everything[0])
    contexts = np.concatenate([x.reshape(-1, 6) for (_, x, _), _ in calls])
    np.testing.assert_array_equal(contexts[kept], everything[1])
    assert (contexts[~kept] == -1).all()  # padding rows have no context: they train nothing
    assert sum(pairs for _, pairs in calls) == pair_count(everything[1]) == np.count_nonzero(everything[1] >= 0)


@pytest.mark.parametrize("sample", [0.0, 0.005])
def test_an_epoch_of_many_chunks_takes_the_steps_the_plan_counts(sample):
    config = dataclasses.replace(CONFIG, sample=sample, epochs=8)
    source = _source(config, 100)
    assert len(source.chunks) > 20
    first = next(source.groups(0))
    plan = plan_batches(config, planned_centres(source, first), items_per_step(config))
    assert plan.steps_per_epoch > plan.steps_per_call  # epochs of several calls
    calls = [item for item in call_stream(source, plan, 0)]
    ends = [i for i, item in enumerate(calls) if item is EPOCH_END]
    steps = np.diff([-1, *ends]) * plan.steps_per_call - plan.steps_per_call  # each epoch's calls, in steps
    if sample == 0:  # every epoch trains the same centres: the plan counts its steps exactly
        assert (steps == plan.steps_per_epoch).all()
    else:  # epochs differ by a few centres: a call more or fewer now and then, and no more
        assert np.abs(steps - plan.steps_per_epoch).max() <= plan.steps_per_call
        assert abs(steps.sum() - plan.total_steps) <= plan.steps_per_call


def test_the_expected_centres_are_the_mean_of_the_epochs():
    config = dataclasses.replace(CONFIG, sample=0.005)  # keeps about half of each word
    source = _source(config, 700)
    counts = [sum(len(groups) for groups in source.groups(epoch)) for epoch in range(30)]
    error = 3 * np.std(counts) / np.sqrt(len(counts))  # of the mean of 30 epochs
    assert abs(source.expected_centres() - np.mean(counts)) < error
    # Sentences of one kept token train nothing: the expected kept tokens alone count them too, too many.
    tokens = source.read(0, 3000)
    assert np.sum(source.keep_prob[tokens[tokens >= 0]]) > np.mean(counts) + error
    # keep = 1 for all: every token of a sentence of two or more; none of a one-word sentence.
    ids, sentences = np.array([0, 1, 2, 0, 1], np.int32), np.array([0, 0, 1, 2, 2], np.int32)
    assert expected_centres(ids, sentences, np.ones(3)) == 4
    # keep 0.5 each, two tokens: each trains when both are kept.
    assert expected_centres(ids[:2], sentences[:2], np.full(3, 0.5)) == pytest.approx(2 * 0.25)


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
