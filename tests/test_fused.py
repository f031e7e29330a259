"""The fused C++ step (jaxgram.fused): word2vec's pair-by-pair SGD, against its plain reference.

The reference (tests/sequential_reference.py) is the definition written in NumPy, float64,
for one worker thread: streams in turn, pairs one after another, the negatives from the same
SplitMix64 draws. Batches use a small vocabulary so ids repeat within a pair, a stream and
across streams (where the order of updates matters), with empty context slots, padding
centres and fractional mask weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sequential_reference import reference_step

from jaxgram import fused
from jaxgram.losses import Params, ns_pair_loss

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def kernel():
    if not fused.available():
        reason = f"jaxgram.fused unavailable: {fused.unavailable_reason()}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI=true: the build must provide it)")
        pytest.skip(reason)


def make_tables(rng, V, D):
    return tuple(jnp.asarray(rng.normal(0.0, 0.5, (V, D)).astype(np.float32)) for _ in range(2))


def make_batch(rng, V, B, C, steps=None):
    """centers [B], contexts [B, C] with ~30% empty slots, noise table [64] of ids < V, seed
    uint32[2] (one per step), mask [B] with padding (0) and a few fractional weights; a leading
    [steps] axis when steps is given."""
    lead = () if steps is None else (steps,)
    contexts = rng.integers(0, V, lead + (B, C)).astype(np.int32)
    contexts[rng.random(contexts.shape) < 0.3] = -1
    mask = rng.choice(np.float32([0.0, 1.0, 1.0, 1.0, 0.5]), lead + (B,))
    noise = jnp.asarray(rng.integers(0, V, 64), jnp.int32)
    seeds = jnp.asarray(rng.integers(0, 2**32, lead + (2,), dtype=np.uint64).astype(np.uint32))
    return (jnp.asarray(rng.integers(0, V, lead + (B,)), jnp.int32), jnp.asarray(contexts), noise, seeds,
            jnp.asarray(mask, jnp.float32))


def assert_steps_equal(got, want):
    for name, g, w in zip(("E", "W", "losses"), got, want):
        assert (g is None) == (w is None), name
        if w is not None:
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), err_msg=name, **TOLERANCE)


STEP = jax.jit(fused.ns_sgd_step, static_argnames=("negative", "streams", "tied", "workers"))


@pytest.mark.parametrize("streams", [1, 3])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("dim", [37, 100])
def test_one_step_equals_the_reference(kernel, tied, dim, streams):
    rng = np.random.default_rng(dim + tied + streams)
    E, W = make_tables(rng, 24, dim)
    batch = make_batch(rng, 24, B=32, C=6)
    lr = 0.1
    want = reference_step(E, None if tied else W, *batch, lr, negative=4, streams=streams)
    got = STEP(E, None if tied else W, *batch, jnp.float32(lr), negative=4, streams=streams, tied=tied)
    assert_steps_equal(got, want)
    # The comparison means something: the step moved rows far beyond the tolerance, the
    # padding centres' losses are exactly 0, and another stream count is another step.
    assert float(np.max(np.abs(want[0] - np.asarray(E)))) > 0.1
    assert np.all(np.asarray(got[2])[np.asarray(batch[-1]) == 0] == 0)
    other = reference_step(E, None if tied else W, *batch, lr, negative=4, streams=streams + 1)
    assert np.max(np.abs(other[0] - want[0])) > 1e-3


def test_one_pair_is_one_sgd_step_on_ns_pair_loss(kernel):
    # One context, one negative (a one-entry noise table), distinct rows: word2vec's update of a
    # pair is exactly -lr times the gradient of losses.ns_pair_loss.
    rng = np.random.default_rng(4)
    E, W = make_tables(rng, 6, 16)
    context, centre, negative = 1, 3, 5
    got = STEP(E, W, jnp.int32([centre]), jnp.int32([[context]]), jnp.int32([negative]), jnp.uint32([7, 9]),
               jnp.float32([1.0]), jnp.float32(0.3), negative=1)
    loss, grads = jax.value_and_grad(ns_pair_loss)(Params(E, W), context, centre, jnp.int32([negative]))
    assert_steps_equal(got, (E - 0.3 * grads.E, W - 0.3 * grads.W, jnp.reshape(loss, (1,))))


# Rows of this length make the kernel keep copies of the first 128 rows only (512 KiB a table):
# vocabularies of more rows exercise both the copied rows and the ones trained in place.
LONG_ROW = 1024
COPIED_ROWS = (1 << 17) // LONG_ROW


def small_long_tables(rng, V):
    """Tables of LONG_ROW floats scaled so that scores stay well inside gensim's saturation at 6."""
    return tuple(jnp.asarray(rng.normal(0.0, 0.02, (V, LONG_ROW)).astype(np.float32)) for _ in range(2))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_threads_change_a_step_only_where_their_streams_share_rows(kernel, tied):
    # Threads train their streams at the same time on the same tables (as gensim's do), so a row
    # two streams touch gets their updates in the order the threads reach it. Four streams that
    # share no row (ids = 4 x + stream, no negatives) over a vocabulary of copied and in-place rows
    # give bitwise the same step on 1, 2, 3 or 4 threads, and one thread gives the reference.
    rng = np.random.default_rng(3 + tied)
    V = 4 * 64
    assert V > COPIED_ROWS
    E, W = small_long_tables(rng, V)
    centers, contexts, noise, seed, mask = make_batch(rng, 64, B=128, C=6)
    stream = (np.arange(128) % 4)[:, None]
    centers, contexts = 4 * centers + stream[:, 0], jnp.where(contexts >= 0, 4 * contexts + stream, -1)
    assert np.any(np.asarray(contexts) >= COPIED_ROWS) and np.any((np.asarray(contexts) >= 0) &
                                                                   (np.asarray(contexts) < COPIED_ROWS))
    batch = (centers, contexts, noise, seed, mask)
    one, *more = (STEP(E, None if tied else W, *batch, jnp.float32(0.4), negative=0, streams=4, tied=tied,
                       workers=n) for n in (1, 2, 3, 4))
    for got in more:
        for name, g, w in zip(("E", "W", "losses"), got, one):
            if w is not None:
                np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=name)
    assert_steps_equal(one, reference_step(E, None if tied else W, *batch, 0.4, negative=0, streams=4))
    assert float(jnp.max(jnp.abs(one[0] - E))) > 1e-3


@pytest.mark.parametrize("threads", [4, 6])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_many_threads_add_their_copies_changes_and_train_other_rows_in_place(kernel, tied, threads):
    # `threads` streams share the frequent rows (ids < COPIED_ROWS: centres, contexts and every
    # negative) and each has rows of its own past them: every thread trains its own copy of the
    # shared rows and the step adds the copies' changes (the reference's parts), while its own rows
    # are trained in place. Reproducible from run to run, and the reference's to float rounding.
    rng = np.random.default_rng(51 + tied + threads)
    own = 24
    V = COPIED_ROWS + threads * own
    E, W = small_long_tables(rng, V)
    B, C = 32 * threads, 4
    stream = np.arange(B) % threads
    shared = rng.random((B, C + 1)) < 0.5
    ids = np.where(shared, rng.integers(0, COPIED_ROWS, (B, C + 1)),
                   COPIED_ROWS + stream[:, None] * own + rng.integers(0, own, (B, C + 1)))
    contexts = np.where(rng.random((B, C)) < 0.2, -1, ids[:, 1:])
    batch = (jnp.asarray(ids[:, 0], jnp.int32), jnp.asarray(contexts, jnp.int32),
             jnp.asarray(rng.integers(0, 16, 64), jnp.int32),  # negatives: the most frequent rows only
             jnp.asarray(rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)), jnp.ones(B, jnp.float32))
    W_in = None if tied else W
    runs = [STEP(E, W_in, *batch, jnp.float32(0.5), negative=5, streams=threads, tied=tied, workers=threads)
            for _ in range(2)]
    for name, g, w in zip(("E", "W", "losses"), runs[1], runs[0]):
        if w is not None:
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=name)
    assert_steps_equal(runs[0], reference_step(E, W_in, *batch, 0.5, negative=5, streams=threads, parts=threads))
    one = STEP(E, W_in, *batch, jnp.float32(0.5), negative=5, streams=threads, tied=tied, workers=1)
    assert float(jnp.max(jnp.abs(one[0] - runs[0][0]))) > 1e-5  # one thread sees the others' changes at once
    assert float(jnp.max(jnp.abs(runs[0][0][COPIED_ROWS:] - E[COPIED_ROWS:]))) > 1e-3  # in-place rows trained


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_a_negative_equal_to_the_centre_and_a_saturated_score_take_no_step(kernel, tied):
    # gensim's two skips: a negative drawn equal to the pair's centre neither trains nor counts (the
    # step equals one with no negatives), and a score with |s| >= 6 counts in the loss but moves no row.
    rng = np.random.default_rng(61 + tied)
    E, W = make_tables(rng, 8, 16)
    W_in = None if tied else W
    centers, contexts, seed, mask = jnp.int32([3, 5]), jnp.int32([[1, 2], [6, -1]]), jnp.uint32([1, 2]), jnp.ones(2)
    common = dict(streams=1, tied=tied)
    own = STEP(E, W_in, centers, contexts, jnp.int32([3, 5]), seed, mask, jnp.float32(0.2), negative=4, **common)
    # The noise table holds only the two centres: about half the draws hit their own pair's centre.
    bare = STEP(E, W_in, centers[:1], contexts[:1], jnp.int32([3]), seed, mask[:1], jnp.float32(0.2), negative=0,
                **common)
    first_only = STEP(E, W_in, centers[:1], contexts[:1], jnp.int32([3]), seed, mask[:1], jnp.float32(0.2),
                      negative=4, **common)
    assert_steps_equal(first_only, bare)
    assert float(jnp.max(jnp.abs(own[0] - E))) > 1e-3
    # Scores of +6.5 (the centre) and -6.5 (the negative): the loss counts them, no row moves.
    E = E.at[1].set(jnp.ones(16))
    W = (E if tied else W).at[3].set(jnp.full(16, 6.5 / 16)).at[4].set(jnp.full(16, -6.5 / 16))
    if tied:
        E = W
    got = STEP(E, None if tied else W, centers[:1], jnp.int32([[1]]), jnp.int32([4]), seed, mask[:1],
               jnp.float32(0.2), negative=1, **common)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(E))
    assert float(got[-1][0]) == pytest.approx(2 * float(jax.nn.softplus(-6.5)), rel=1e-4)


def disjoint_streams_batch(rng, B, C, negative, table_bits=22):
    """A batch of two streams (B centres, C slots) that share no row of E or W though each
    pair draws `negative` negatives: stream 0 uses even ids, stream 1 odd ones, and the noise
    table holds an even id in every slot stream 0's draws read and an odd one in stream 1's
    (the draws are the kernel's, computed by the reference's SplitMix64)."""
    from sequential_reference import stream_bits

    centers, contexts, _, _, mask = make_batch(rng, 12, B=B, C=C)
    parity = (np.arange(B) % 2)[:, None]
    centers, contexts = 2 * centers + parity[:, 0], jnp.where(contexts >= 0, 2 * contexts + parity, -1)
    present = np.asarray(contexts >= 0) & (np.asarray(mask) != 0)[:, None]
    for _ in range(100):  # a seed whose two streams read no common slot
        seed = rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
        slots = []
        for stream in range(2):
            bits = stream_bits(seed, stream)
            draws = int(present[stream::2].sum()) * negative
            slots.append({next(bits) >> (64 - table_bits) for _ in range(draws)})
        if not slots[0] & slots[1]:
            break
    assert slots[0] and slots[1] and not slots[0] & slots[1]
    table = 2 * rng.integers(0, 12, 1 << table_bits) + (rng.random(1 << table_bits) < 0.5)
    for stream in range(2):
        for slot in slots[stream]:
            table[slot] = 2 * (table[slot] // 2) + stream
    return centers, contexts, jnp.asarray(table, jnp.int32), jnp.asarray(seed), mask


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_two_threads_train_streams_with_negatives_as_the_reference_does(kernel, tied):
    # Streams that share no row, negatives included, train to the sequential reference on two
    # threads, bitwise as on one; the kernel's record of the step accounts for every centre.
    rng = np.random.default_rng(21 + tied)
    E, W = make_tables(rng, 24, 1024)  # long rows: each thread's share takes milliseconds
    batch = disjoint_streams_batch(rng, B=256, C=4, negative=5)
    trained = int(np.count_nonzero(np.asarray(batch[-1])))
    want = reference_step(E, None if tied else W, *batch, 0.05, negative=5, streams=2)
    one = STEP(E, None if tied else W, *batch, jnp.float32(0.05), negative=5, streams=2, tied=tied, workers=1)
    assert fused.last_step_threads() == [trained]
    assert_steps_equal(one, want)
    for _ in range(5):
        two = STEP(E, None if tied else W, *batch, jnp.float32(0.05), negative=5, streams=2, tied=tied, workers=2)
        for name, g, w in zip(("E", "W", "losses"), two, one):
            if w is not None:
                np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=name)
        # Every trained centre is on the record, by one or two threads: the calling thread takes the
        # second part itself when no pool thread has started yet (in the full suite on 2 cores it often
        # does), so whether a pool thread took part is timing; test_pool_threads_take_parts_side_by_side
        # shows, without timing, that they do.
        seen = fused.last_step_threads()
        assert sum(seen) == trained and 1 <= len(seen) <= 2 and min(seen) > 0
    assert float(jnp.max(jnp.abs(one[1 if not tied else 0] - (W if not tied else E)))) > 0.01


def test_a_pool_thread_trains_a_share_of_real_steps(kernel):
    # Two workers, K = 5, each share of a step tens of milliseconds of work (2,048 centres, rows
    # of 1,024 floats): the kernel's own record shows a second thread (one of XLA's pool)
    # training centres. The caller takes a share itself only if no pool thread has taken it by
    # the time its own is done, which a share this long leaves no room for even with every core
    # busy (measured with three spinning processes on 2 cores: at most 2 steps); twenty steps
    # in a row on one thread would mean the pool lends the kernel no thread at all.
    rng = np.random.default_rng(41)
    E, W = make_tables(rng, 24, 1024)
    batch = make_batch(rng, 24, B=2048, C=6)
    trained = int(np.count_nonzero(np.asarray(batch[-1])))
    records = []
    for _ in range(20):
        STEP(E, W, *batch, jnp.float32(0.05), negative=5, streams=2, workers=2)[0].block_until_ready()
        records.append(fused.last_step_threads())
        if len(records[-1]) == 2:
            break
    assert all(sum(record) == trained for record in records), records
    assert len(records[-1]) == 2 and min(records[-1]) > 0, records


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_two_threads_train_copies_of_the_rows_they_share_and_add_their_changes(kernel, tied):
    # 12 rows of 40 floats: every row is one each thread keeps its own copy of for the step (the
    # kernel's hot rows), so streams that share rows still give a reproducible step: each part's
    # streams trained from the step's tables, the parts' changes added (the reference's parts=2).
    rng = np.random.default_rng(31 + tied)
    E, W = make_tables(rng, 12, 40)
    batch = make_batch(rng, 12, B=64, C=6)
    W_in = None if tied else W
    runs = [STEP(E, W_in, *batch, jnp.float32(0.1), negative=5, streams=2, tied=tied, workers=2) for _ in range(3)]
    for again in runs[1:]:
        for name, g, w in zip(("E", "W", "losses"), again, runs[0]):
            if w is not None:
                np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=name)
    assert_steps_equal(runs[0], reference_step(E, W_in, *batch, 0.1, negative=5, streams=2, parts=2))
    # One thread trains the same streams one after the other, each seeing the other's changes.
    one = STEP(E, W_in, *batch, jnp.float32(0.1), negative=5, streams=2, tied=tied, workers=1)
    assert float(jnp.max(jnp.abs(one[0] - runs[0][0]))) > 1e-3


def test_pool_threads_take_parts_side_by_side(kernel):
    assert sorted(set(fused.parallel_probe(2).tolist())) == [1, 2]
    assert len(set(fused.parallel_probe(3).tolist())) >= 2


@pytest.mark.parametrize("failure, message", [("exception", "part 1 failed on purpose"), ("bad_alloc", "bad_alloc")])
def test_a_part_that_throws_on_a_pool_thread_is_an_error_not_a_dead_process(kernel, failure, message):
    with pytest.raises(Exception, match=message):
        fused.parallel_probe(2, fail_part=1, failure=failure)
    with pytest.raises(Exception, match="part 0 failed on purpose"):
        fused.parallel_probe(3, fail_part=0)
    assert sorted(set(fused.parallel_probe(2).tolist())) == [1, 2]  # the pool still works


def test_one_thread_reproduces_a_step_bitwise(kernel):
    rng = np.random.default_rng(9)
    E, W = make_tables(rng, 12, 40)
    batch = make_batch(rng, 12, B=64, C=6)
    first, again = (STEP(E, W, *batch, jnp.float32(0.4), negative=5, streams=2) for _ in range(2))
    for g, w in zip(first, again):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_rows_no_present_centre_touches_stay_bitwise_equal(kernel):
    rng = np.random.default_rng(7)
    E, W = make_tables(rng, 40, 16)
    batch = make_batch(rng, 20, B=8, C=4)  # ids < 20 only, noise table included
    newE, newW, _ = fused.ns_sgd_step(E, W, *batch, jnp.float32(0.1), negative=3, streams=2)
    np.testing.assert_array_equal(np.asarray(newE[20:]), np.asarray(E[20:]))
    np.testing.assert_array_equal(np.asarray(newW[20:]), np.asarray(W[20:]))
    assert not np.array_equal(np.asarray(newW[:20]), np.asarray(W[:20]))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_fused_steps_in_jit_and_scan_equal_as_many_reference_steps(kernel, tied):
    rng = np.random.default_rng(11 + tied)
    E, W = make_tables(rng, 30, 20)
    centers, contexts, noise, seeds, mask = make_batch(rng, 30, B=16, C=5, steps=5)

    def body(tables, batch):
        E, W, losses = fused.ns_sgd_step(*tables, batch[0], batch[1], noise, batch[2], batch[3], jnp.float32(0.3),
                                         negative=3, streams=2, tied=tied)
        return (E, W), losses

    run = jax.jit(lambda E, W: jax.lax.scan(body, (E, W), (centers, contexts, seeds, mask)))
    (gotE, gotW), got_losses = run(E, None if tied else W)
    wantE, wantW, want_losses = E, None if tied else W, []
    for s in range(5):
        wantE, wantW, losses = reference_step(wantE, wantW, centers[s], contexts[s], noise, seeds[s], mask[s], 0.3,
                                              negative=3, streams=2)
        want_losses.append(losses)
    assert_steps_equal((gotE, gotW, got_losses), (wantE, wantW, np.stack(want_losses)))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_donated_tables_are_aliased_in_place(kernel, tied):
    rng = np.random.default_rng(3)
    E, W = make_tables(rng, 24, 12)
    batch = make_batch(rng, 24, B=10, C=4)
    want = reference_step(E, None if tied else W, *batch, 0.2, negative=2, streams=2)
    donated = (E + 0.0, None if tied else W + 0.0)
    step = jax.jit(fused.ns_sgd_step, static_argnames=("negative", "streams", "tied"), donate_argnums=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Some donated buffers were not usable" would fail
        got = step(*donated, *batch, jnp.float32(0.2), negative=2, streams=2, tied=tied)
    assert donated[0].is_deleted()
    assert_steps_equal(got, want)


def test_an_id_outside_the_tables_fails_the_call(kernel):
    rng = np.random.default_rng(5)
    E, W = make_tables(rng, 10, 8)
    centers, contexts, noise, seed, mask = make_batch(rng, 10, B=4, C=3)
    ones = jnp.ones_like(mask)
    with pytest.raises(Exception, match="centre id 10 outside W's 10 rows"):
        jax.block_until_ready(fused.ns_sgd_step(E, W, centers.at[0].set(10), contexts, noise, seed, ones,
                                                jnp.float32(0.1), negative=2))
    with pytest.raises(Exception, match="noise table id 12 outside W's 10 rows"):
        jax.block_until_ready(fused.ns_sgd_step(E, W, centers, contexts.at[:, 0].set(1), jnp.full_like(noise, 12),
                                                seed, ones, jnp.float32(0.1), negative=2, streams=2))
    with pytest.raises(ValueError, match="noise_ids must be one power-of-two-long table"):
        fused.ns_sgd_step(E, W, centers, contexts, noise[:48], seed, mask, jnp.float32(0.1), negative=2)
    with pytest.raises(TypeError, match=r"seed must be uint32\[2\]"):
        fused.ns_sgd_step(E, W, centers, contexts, noise, seed.astype(jnp.int32), mask, jnp.float32(0.1), negative=2)
    with pytest.raises(ValueError, match="mask must have 1 dimension"):
        fused.ns_sgd_step(E, W, centers, contexts, noise, seed, mask[:2], jnp.float32(0.1), negative=2)


SHARD_MAP_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_num_cpu_devices", 2)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    sys.path.insert(0, sys.argv[1])
    from sequential_reference import reference_step
    from test_fused import assert_steps_equal, make_batch, make_tables
    from jaxgram import fused

    rng = np.random.default_rng(2)
    E, W = make_tables(rng, 30, 16)
    batches = [make_batch(rng, 30, B=12, C=4, steps=3) for _ in range(2)]
    noise = batches[0][2]  # one noise table for every replica, as the trainer's
    stacked = tuple(jnp.stack([batch[i] for batch in batches]) for i in (0, 1, 3, 4))  # [replica, steps, ...]
    lr = jnp.float32(0.25)  # the same on every replica, as the trainer's schedule is

    def replica(E, W, centers, contexts, seeds, mask, noise, lr):
        # Tables that vary per device inside the call, as data-parallel copies of them would.
        E, W = jax.lax.pcast((E, W), ("replica",), to="varying")
        def body(tables, batch):
            E, W, losses = fused.ns_sgd_step(*tables, batch[0], batch[1], noise, batch[2], batch[3], lr,
                                             negative=3, streams=2)
            return (E, W), losses
        (E, W), losses = jax.lax.scan(body, (E, W), (centers[0], contexts[0], seeds[0], mask[0]))
        return E[None], W[None], losses[None]

    mesh = Mesh(np.asarray(jax.devices()[:2]), ("replica",))
    split, whole = P("replica"), P()
    run = jax.jit(jax.shard_map(replica, mesh=mesh, in_specs=(whole, whole) + (split,) * 4 + (whole, whole),
                                out_specs=(split, split, split)))
    gotE, gotW, got_losses = run(E, W, *stacked, noise, lr)
    for r, (centers, contexts, _, seeds, mask) in enumerate(batches):
        wantE, wantW, want_losses = E, W, []
        for s in range(3):
            wantE, wantW, losses = reference_step(wantE, wantW, centers[s], contexts[s], noise, seeds[s], mask[s],
                                                  0.25, negative=3, streams=2)
            want_losses.append(losses)
        assert_steps_equal((gotE[r], gotW[r], got_losses[r]), (wantE, wantW, np.stack(want_losses)))
    print("replicas ok")
""")


def test_fused_steps_under_shard_map_on_two_cpu_devices(kernel):
    result = subprocess.run([sys.executable, "-c", SHARD_MAP_SCRIPT, str(Path(__file__).parent)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "replicas ok" in result.stdout


def test_importing_registers_nothing_and_a_missing_library_is_reported():
    code = textwrap.dedent("""
        import sys
        import jaxgram.fused as fused
        assert "jax" not in sys.modules, "importing jaxgram.fused loaded jax"
        assert not fused.available()
        assert "/nowhere/_ns_sgd.so" in fused.unavailable_reason(), fused.unavailable_reason()
        try:
            fused.ns_sgd_step(None, None, None, None, None, None, None, 0.1, 5)
        except RuntimeError as error:
            assert "not built" in str(error), error
        else:
            raise AssertionError("ns_sgd_step ran without its library")
        print("reported")
    """)
    env = {**os.environ, fused.LIBRARY_ENV: "/nowhere/_ns_sgd.so"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "reported" in result.stdout
