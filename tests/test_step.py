"""One training step: pair-by-pair SGD in lockstep against its sequential definition, the sparse softmax
update against the dense one, and a compiled call that does not recompile."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compiled_hlo import whole_table_instructions

from jaxgram import TrainConfig
from jaxgram.data import noise_distribution, noise_slot_starts, noise_table
from jaxgram.init import init_params
from jaxgram.losses import Params
from jaxgram.parallel import compile_steps
from jaxgram.step import Carry, NoiseSlots, make_optimizer, make_step, negative_sampler, optimizer_step_count

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


def _fresh_carry(trainable, optimizer) -> Carry:
    """A carry of copies: a compiled call takes its carry's buffers (donation), so each run gets its own."""
    trainable = jax.tree_util.tree_map(jnp.copy, trainable)
    return Carry(trainable, optimizer.init(trainable), jax.random.PRNGKey(1))


@pytest.mark.parametrize("tied", [False, True])
def test_sparse_softmax_row_update_equals_dense_update(tied):
    config = dataclasses.replace(SMALL, objective="softmax", tied=tied)
    trainable, batch, cdf = _carry_and_batch(config)
    optimizer = make_optimizer(config, total_steps=10)
    results = []
    for sparse in (True, False):
        run_many = compile_steps(functools.partial(make_step, config, optimizer, sparse=sparse))
        carry = _fresh_carry(trainable, optimizer)
        carry, totals = run_many(carry, *batch, cdf)
        results.append((carry.trainable, totals))
    for leaf_sparse, leaf_dense in zip(jax.tree_util.tree_leaves(results[0]), jax.tree_util.tree_leaves(results[1])):
        np.testing.assert_allclose(leaf_sparse, leaf_dense, rtol=1e-5, atol=1e-6)


def _disjoint_streams(streams: int, slots: int, negative: int, rows_each: int, rng):
    """A lockstep batch whose streams share no row: stream s draws every id (its centre, contexts and
    negatives, distinct within a pair but for a negative that may be the centre itself, which gensim's
    update skips) from its own block of `rows_each` ids. Some slots are empty."""
    centers, contexts, negatives = [], [], []
    for stream in range(streams):
        ids = stream * rows_each + rng.permutation(rows_each)
        centers.append(ids[0])
        contexts.append(np.where(rng.random(slots) < 0.3, -1, ids[1:1 + slots]))
        pool = np.concatenate([ids[:1], ids[1 + slots:]])
        negatives.append([rng.choice(pool, negative, replace=False) for _ in range(slots)])
    negatives = np.transpose(np.asarray(negatives), (1, 0, 2))  # [C, B, K]
    assert np.any(negatives == np.asarray(centers)[None, :, None])  # the skip is exercised
    return tuple(jnp.asarray(part, jnp.int32) for part in (centers, contexts, negatives))


@pytest.mark.parametrize("tied", [False, True])
def test_lockstep_streams_train_pair_by_pair_as_word2vec_does(tied):
    # Streams that share no row: lockstep must equal each stream trained alone, pair after pair,
    # as word2vec.c does (the NumPy reference of the fused kernel's definition), on every row.
    from sequential_reference import train_pair

    from jaxgram.step import lockstep_ns_sgd

    streams, slots, negative, rows_each, lr = 6, 4, 3, 12, 0.3
    centers, contexts, negatives = _disjoint_streams(streams, slots, negative, rows_each, np.random.default_rng(5))
    params = init_params(jax.random.PRNGKey(2), streams * rows_each, 8, "glorot")
    tables = Params(params.E, None if tied else params.W)
    got, total = jax.jit(lockstep_ns_sgd)(tables, centers, contexts, negatives, jnp.float32(lr))
    E = np.array(params.E, np.float64)
    W = E if tied else np.array(params.W, np.float64)
    want_total = 0.0
    for stream in range(streams):
        for slot in range(slots):
            if contexts[stream, slot] >= 0:
                want_total += train_pair(E, W, int(contexts[stream, slot]), int(centers[stream]),
                                         np.asarray(negatives[slot, stream]), lr)
    np.testing.assert_allclose(got.E, E, rtol=1e-5, atol=1e-6)
    if not tied:
        np.testing.assert_allclose(got.W, W, rtol=1e-5, atol=1e-6)
    assert float(total) == pytest.approx(want_total, rel=1e-5)
    assert not np.allclose(got.E, params.E)  # it did train


@pytest.mark.parametrize("tied", [False, True])
def test_lockstep_skips_negatives_equal_to_the_centre_and_saturated_scores(tied):
    # gensim's two skips: a negative drawn equal to the pair's centre neither trains nor counts (the
    # step equals one without it), and a score with |s| >= 6 counts in the loss but moves no row.
    from jaxgram.step import lockstep_ns_sgd

    params = init_params(jax.random.PRNGKey(5), 10, 8, "glorot")
    tables = Params(params.E, None if tied else params.W)
    centers, contexts = jnp.array([0, 4]), jnp.array([[1, 2], [5, -1]])
    own = jnp.array([[[0, 0], [4, 4]], [[0, 0], [4, 4]]])  # [C, B, K]: every negative is its pair's centre
    (skipped, skipped_total), (bare, bare_total) = (
        lockstep_ns_sgd(tables, centers, contexts, negatives, jnp.float32(0.3))
        for negatives in (own, jnp.zeros((2, 2, 0), jnp.int32)))
    for got, want in ((skipped.E, bare.E), (skipped.W, bare.W)):
        if want is not None:
            np.testing.assert_array_equal(got, want)
    assert float(skipped_total) == float(bare_total)
    assert not np.allclose(bare.E, params.E)
    # A pair whose scores are all past 6 in magnitude (the centre's +6.5, the negative's -6.5).
    E = params.E.at[1].set(jnp.ones(8))
    W = (E if tied else params.W).at[0].set(jnp.full(8, 6.5 / 8)).at[3].set(jnp.full(8, -6.5 / 8))
    tables = Params(W, None) if tied else Params(E, W)
    got, total = lockstep_ns_sgd(tables, jnp.array([0]), jnp.array([[1]]), jnp.array([[[3]]]), jnp.float32(0.3))
    np.testing.assert_array_equal(got.E, tables.E)
    assert float(total) == pytest.approx(2 * float(jax.nn.softplus(-6.5)), rel=1e-5)


def test_lockstep_changes_of_streams_that_hit_one_row_add_up():
    from jaxgram.step import lockstep_ns_sgd

    params = init_params(jax.random.PRNGKey(3), 10, 8, "glorot")
    one = (jnp.array([0]), jnp.array([[1]]), jnp.array([[[2, 3]]]))
    twice = (jnp.array([0, 0]), jnp.array([[1], [1]]), jnp.array([[[2, 3], [2, 3]]]))
    (single, _), (double, _) = (lockstep_ns_sgd(params, *batch, jnp.float32(0.1)) for batch in (one, twice))
    for table in ("E", "W"):
        change = getattr(single, table) - getattr(params, table)
        np.testing.assert_allclose(getattr(double, table) - getattr(params, table), 2 * change, rtol=1e-5, atol=1e-7)


def test_lockstep_empty_slots_and_padding_touch_no_row():
    # Empty context slots (-1, and the padding rows of a chunk's last call) used to read and write
    # E's last row; they must leave every row they do not name bitwise as it was, the last included.
    from jaxgram.step import lockstep_ns_sgd

    vocab = 12
    params = init_params(jax.random.PRNGKey(4), vocab, 8, "glorot")
    centers = jnp.array([0, 1, 0], jnp.int32)
    contexts = jnp.array([[2, -1, 3], [-1, -1, -1], [-1, -1, -1]], jnp.int32)  # stream 2 is padding
    negatives = jnp.broadcast_to(jnp.array([4, 5], jnp.int32), (3, 3, 2))
    got, total = lockstep_ns_sgd(params, centers, contexts, negatives, jnp.float32(0.5))
    named_E, named_W = {2, 3}, {0, 4, 5}  # stream 1's centre 1 trains no pair: its row stays too
    for row in range(vocab):
        assert np.array_equal(got.E[row], params.E[row]) == (row not in named_E), row
        assert np.array_equal(got.W[row], params.W[row]) == (row not in named_W), row
    assert np.isfinite(float(total)) and float(total) > 0


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_second_call_does_not_recompile(optimizer):
    config = dataclasses.replace(SMALL, optimizer=optimizer)
    trainable, (centers, contexts, mask), cdf = _carry_and_batch(config)
    opt = make_optimizer(config, total_steps=100)
    run_many = compile_steps(functools.partial(make_step, config, opt))
    carry = Carry(trainable, opt.init(trainable), jax.random.PRNGKey(1))
    carry, _ = run_many(carry, centers, contexts, mask, cdf)
    carry, _ = run_many(carry, centers[::-1], contexts, mask, cdf)
    assert run_many._cache_size() == 1


def test_negatives_come_from_the_noise_table_k_per_centre():
    noise_ids = jnp.asarray(np.repeat(np.array([3, 7], np.int32), 4))  # 8 slots: words 3 and 7 only
    sample = negative_sampler(noise_ids, 5)
    drawn = np.asarray(sample(jax.random.PRNGKey(0), (1000,)))
    assert drawn.shape == (1000, 5) and set(np.unique(drawn)) == {3, 7}
    assert np.asarray(sample(jax.random.PRNGKey(0), (4, 3))).shape == (4, 3, 5)
    assert 0.45 < np.mean(drawn == 3) < 0.55
    with pytest.raises(ValueError, match="power-of-two"):
        negative_sampler(jnp.arange(6), 5)


def test_the_noise_tables_slots_draw_the_tables_negatives():
    # NoiseSlots (the row-sharded runs' noise) must give the very ids the table gives for each key.
    counts = np.random.default_rng(0).zipf(1.5, 5000).astype(np.float64)
    counts[[0, 17, -1]] = 0  # words without a slot
    noise = noise_distribution(counts, 0.75)
    slots = NoiseSlots(jnp.asarray(noise_slot_starts(noise, 16)), 16)
    drawn_from_slots = jax.jit(lambda noise, key: negative_sampler(noise, 5)(key, (64, 3)))  # as the step draws
    for seed in range(3):
        from_table = negative_sampler(jnp.asarray(noise_table(noise, 16)), 5)(jax.random.PRNGKey(seed), (64, 3))
        from_slots = drawn_from_slots(slots, jax.random.PRNGKey(seed))
        assert from_slots.dtype == from_table.dtype == jnp.int32
        np.testing.assert_array_equal(from_slots, from_table)


def test_the_step_counter_is_found_in_the_optimizer_state():
    trainable = Params(jnp.zeros((4, 2)), None)
    for name in ("sgd", "adam"):
        optimizer = make_optimizer(dataclasses.replace(SMALL, optimizer=name), total_steps=10)
        assert int(optimizer_step_count(optimizer.init(trainable))) == 0
    assert optimizer_step_count(()) is None


@pytest.mark.parametrize("tied", [False, True])
def test_the_fused_step_trains_with_its_keys_seed_and_the_schedules_rate(tied):
    # The compiled step's plumbing: each step's seed comes from its key as make_step splits it,
    # its rate from the optax schedule, its streams from make_step. Every row of E and W, to 1e-5,
    # against the kernel's plain reference.
    from sequential_reference import reference_step

    from jaxgram import fused
    from jaxgram.step import learning_rate_schedule

    if not fused.available():
        pytest.fail(f"the fused kernel is not built: {fused.unavailable_reason()}")
    # One thread, which trains the 2 streams in turn, as the reference does.
    config = dataclasses.replace(SMALL, tied=tied, workers=1)
    trainable, (centers, contexts, mask), noise_ids = _carry_and_batch(config, vocab_size=30, batch=48)
    contexts = jnp.stack([contexts, contexts[::-1], jnp.full_like(contexts, -1)], axis=-1)  # groups with an empty slot
    optimizer = make_optimizer(config, total_steps=10)
    run_many = compile_steps(functools.partial(make_step, config, optimizer, kernel="fused", streams=2))
    got, got_totals = run_many(_fresh_carry(trainable, optimizer), centers, contexts, mask, noise_ids)
    E, W, key, want_totals = trainable.E, trainable.W, jax.random.PRNGKey(1), []
    schedule = learning_rate_schedule(config, 10)
    for step in range(4):
        key, sample_key = jax.random.split(key)
        seed = jax.random.bits(sample_key, (2,), jnp.uint32)
        E, W, losses = reference_step(E, W, centers[step], contexts[step], noise_ids, seed, mask[step],
                                      float(schedule(step)), config.negative, streams=2)
        want_totals.append(losses.sum())
    np.testing.assert_allclose(got.trainable.E, E, rtol=1e-5, atol=1e-5)
    if not tied:
        np.testing.assert_allclose(got.trainable.W, W, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got.trainable.E, trainable.E)  # the steps did train
    np.testing.assert_allclose(got_totals, want_totals, rtol=1e-5)
    assert int(optimizer_step_count(got.opt_state)) == 4


def test_alpha_falls_per_worker_as_gensims_corpus_file_mode_or_linearly():
    from jaxgram.step import learning_rate_schedule

    config = dataclasses.replace(SMALL, epochs=4, alpha=0.025, min_alpha=0.001, workers=2)
    per_worker, linear = (learning_rate_schedule(dataclasses.replace(config, alpha_schedule=name), 400)
                          for name in ("per_worker", "linear"))

    def at(schedule, count):
        return float(schedule(jnp.int32(count)))

    for epoch in range(4):
        start = 100 * epoch
        assert at(per_worker, start) == pytest.approx(at(linear, start))  # every epoch starts where linear is
        # ... then falls half as fast: each of 2 workers counts only the words of its own share.
        assert at(per_worker, start + 80) == pytest.approx(at(linear, start + 40))
        assert at(per_worker, start + 99) > at(linear, start + 60)
    assert at(linear, 400) == pytest.approx(0.001) and at(per_worker, 0) == pytest.approx(0.025)
    one_worker = learning_rate_schedule(dataclasses.replace(config, workers=1), 400)
    assert all(at(one_worker, c) == pytest.approx(at(linear, c)) for c in (0, 99, 150, 399))


def test_auto_schedule_is_per_worker_for_the_fused_kernel_and_linear_for_the_xla_step():
    # gensim corpus_file's per-worker alpha models the fused kernel's CPU threads; the XLA step (every
    # accelerator and mesh) has no such threads and takes word2vec's linear schedule.
    from jaxgram.step import learning_rate_schedule

    config = dataclasses.replace(SMALL, epochs=4, workers=2)
    assert config.alpha_schedule == "auto"
    auto = {kernel: learning_rate_schedule(config, 400, kernel) for kernel in ("fused", "xla")}
    named = {name: learning_rate_schedule(dataclasses.replace(config, alpha_schedule=name), 400, "xla")
             for name in ("per_worker", "linear")}
    counts = (0, 80, 99, 150, 399)
    assert [float(auto["fused"](c)) for c in counts] == pytest.approx([float(named["per_worker"](c)) for c in counts])
    assert [float(auto["xla"](c)) for c in counts] == pytest.approx([float(named["linear"](c)) for c in counts])
    assert float(auto["fused"](80)) > float(auto["xla"](80)) + 1e-3


@pytest.mark.parametrize("name", ["linear", "per_worker"])
def test_the_hosts_schedule_gives_the_steps_rates_without_a_device(name):
    # The progress bar and the epoch log read alpha with NumPy: the same rates as the step's
    # schedule, and no JAX array made. The step's linear schedule is optax's to the bit.
    import optax

    from jaxgram.step import learning_rate_schedule

    config = dataclasses.replace(SMALL, epochs=4, alpha=0.025, min_alpha=0.0001, workers=2, alpha_schedule=name)
    counts = jnp.arange(0, 410, dtype=jnp.int32)
    on_device = np.asarray(jax.jit(jax.vmap(learning_rate_schedule(config, 400)))(counts))
    host = learning_rate_schedule(config, 400, xp=np)
    on_host = np.array([host(count) for count in range(410)])
    assert not any(isinstance(host(count), jax.Array) for count in (0, 399))
    np.testing.assert_allclose(on_host, on_device, rtol=1e-6, atol=1e-8)  # float32 rounding near min_alpha
    assert on_host[0] == pytest.approx(0.025) and on_host[-1] == pytest.approx(0.0001, abs=1e-6)
    if name == "linear":
        optaxs = jax.jit(jax.vmap(optax.linear_schedule(config.alpha, config.min_alpha, 400)))(counts)
        np.testing.assert_array_equal(on_device, np.asarray(optaxs))


def test_kernel_choice_follows_the_config_and_refuses_what_cannot_apply():
    from jaxgram import fused
    from jaxgram.errors import ConfigError
    from jaxgram.step import resolve_kernel

    built = "fused" if fused.available() else "xla"
    assert resolve_kernel(SMALL, "cpu", on_mesh=False) == built
    assert resolve_kernel(dataclasses.replace(SMALL, kernel="xla"), "cpu", on_mesh=False) == "xla"
    assert resolve_kernel(SMALL, "gpu", on_mesh=False) == "xla"
    assert resolve_kernel(dataclasses.replace(SMALL, optimizer="adam"), "cpu", on_mesh=False) == "xla"
    assert resolve_kernel(SMALL, "cpu", on_mesh=True) == "xla"
    with pytest.raises(ConfigError, match="kernel='fused' is not allowed with optimizer='adam'.*kernel='auto' or 'xla'"):
        resolve_kernel(dataclasses.replace(SMALL, kernel="fused", optimizer="adam"), "cpu", on_mesh=False)


@pytest.mark.parametrize("optimizer, expect_whole_table", [("sgd", False), ("adam", True)])
def test_a_compiled_sparse_step_touches_no_whole_table(optimizer, expect_whole_table):
    # Per step, sparse SGD must cost O(batch rows), not O(V x D): on an accelerator, where a step
    # holds thousands of centres, one whole-table op per step would be most of the time. Adam
    # keeps per-entry state and updates the whole tables: the check must see that.
    vocab_size, batch = 5003, 64
    config = dataclasses.replace(SMALL, optimizer=optimizer, kernel="xla")
    trainable, batches, noise_ids = _carry_and_batch(config, vocab_size, batch)
    optimizer_fn = make_optimizer(config, 100)
    run_many = compile_steps(functools.partial(make_step, config, optimizer_fn, kernel="xla"))
    contexts = jnp.stack([batches[1]] * 3, axis=-1)  # centre groups [steps, batch, 3]
    carry = _fresh_carry(trainable, optimizer_fn)
    hlo = run_many.lower(carry, batches[0], contexts, batches[2], noise_ids).compile().as_text()
    found = whole_table_instructions(hlo, vocab_size, config.dim)
    assert bool(found) == expect_whole_table, found[:5]
    assert f"f32[{vocab_size},{config.dim}]" in hlo  # the tables are in the module the check read
