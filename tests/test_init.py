import jax
import numpy as np
import pytest

from jaxgram.init import init_params


def test_word2vec_init_follows_word2vec_and_the_dostoevsky_article():
    params = init_params(jax.random.PRNGKey(0), 500, 40, "word2vec")
    E, W = np.asarray(params.E), np.asarray(params.W)
    assert E.shape == W.shape == (500, 40) and E.dtype == np.float32
    assert np.abs(E).max() <= 0.5 / 40 and np.abs(E).max() > 0.45 / 40
    assert abs(E.mean()) < 1e-3
    assert not W.any()


def test_gensim_init_is_gensim_4s_twice_as_wide_range():
    params = init_params(jax.random.PRNGKey(0), 500, 40, "gensim")
    E, W = np.asarray(params.E), np.asarray(params.W)
    assert np.abs(E).max() <= 1.0 / 40 and np.abs(E).max() > 0.95 / 40
    assert abs(E.mean()) < 2e-3 and not W.any()
    # The same draws as word2vec's, scaled: one key gives the same pattern under either scheme.
    word2vec = np.asarray(init_params(jax.random.PRNGKey(0), 500, 40, "word2vec").E)
    np.testing.assert_allclose(E, 2 * word2vec, rtol=1e-6)


def test_glorot_init_scale_and_keys():
    params = init_params(jax.random.PRNGKey(0), 500, 40, "glorot")
    limit = np.sqrt(6 / (500 + 40))
    assert np.abs(np.asarray(params.E)).max() <= limit and np.asarray(params.W).std() > limit / 3
    other = init_params(jax.random.PRNGKey(1), 500, 40, "glorot")
    assert not np.array_equal(params.E, other.E)
    np.testing.assert_array_equal(params.E, init_params(jax.random.PRNGKey(0), 500, 40, "glorot").E)


@pytest.mark.parametrize("scheme", ["word2vec", "gensim", "glorot"])
def test_host_tables_equal_the_device_ones_bitwise(scheme):
    from jaxgram.init import host_init_params

    device = init_params(jax.random.PRNGKey(4), 300, 24, scheme)
    host = host_init_params(jax.random.PRNGKey(4), 300, 24, scheme)
    assert isinstance(host.E, np.ndarray) and isinstance(host.W, np.ndarray)
    np.testing.assert_array_equal(host.E, np.asarray(device.E))
    np.testing.assert_array_equal(host.W, np.asarray(device.W))


def test_drawing_a_table_holds_a_block_of_rows_and_compiles_nothing_per_vocabulary_but_a_write():
    from jaxgram.init import ROWS_PER_DRAW, _draw_block, _write_rows

    rows, dim = 40 * ROWS_PER_DRAW, 64
    key, low, high = jax.random.PRNGKey(0), np.float32(-0.1), np.float32(0.1)
    # The draw's scratch is a few blocks whatever the vocabulary: well under a table of 40 blocks.
    draw = _draw_block.lower(key, 3, ROWS_PER_DRAW, dim, low, high).compile().memory_analysis()
    assert draw.temp_size_in_bytes + draw.output_size_in_bytes < 8 * ROWS_PER_DRAW * dim * 4
    # The write into the table happens in place: no second table.
    table = jax.ShapeDtypeStruct((rows, dim), np.float32)
    block = jax.ShapeDtypeStruct((ROWS_PER_DRAW, dim), np.float32)
    write = _write_rows.lower(table, block, 0).compile().memory_analysis()
    assert write.temp_size_in_bytes < ROWS_PER_DRAW * dim * 4 and write.alias_size_in_bytes == rows * dim * 4
    # A new vocabulary size compiles a write, not a draw.
    before = _draw_block._cache_size()
    for vocab_size in (3 * ROWS_PER_DRAW + 7, 5 * ROWS_PER_DRAW + 11):
        init_params(key, vocab_size, 24, "gensim")
    assert _draw_block._cache_size() <= before + 1


def test_every_row_is_drawn_when_the_blocks_do_not_divide_the_vocabulary():
    from jaxgram.init import ROWS_PER_DRAW

    rows = 2 * ROWS_PER_DRAW + 123
    E = np.asarray(init_params(jax.random.PRNGKey(5), rows, 8, "word2vec").E)
    assert np.all(np.abs(E).max(axis=1) > 0)  # no row left at its zero start
    assert len(np.unique(E, axis=0)) == rows  # and no block repeated another's draws
    assert abs(E[-ROWS_PER_DRAW:].mean()) < 2e-3 and E[-ROWS_PER_DRAW:].std() > 0.25 / 8


@pytest.mark.parametrize("scheme", ["word2vec", "gensim", "glorot"])
def test_any_rows_drawn_alone_equal_those_of_the_whole_tables(scheme):
    from jaxgram.init import ROWS_PER_DRAW, init_rows

    block, dim = ROWS_PER_DRAW, 3
    # Fewer rows than a block, exactly one, and a few blocks past with a last partial block
    # (which is drawn over the end of the one before it).
    for vocab_size in (700, block, 3 * block + 100):
        whole = init_params(jax.random.PRNGKey(5), vocab_size, dim, scheme)
        bounds = {0, 1, vocab_size // 3, vocab_size - 1, vocab_size} | {
            edge + step for edge in (block, 2 * block, 3 * block, vocab_size - block) for step in (-1, 0, 1)}
        bounds = sorted(b for b in bounds if 0 <= b <= vocab_size)
        ranges = [(0, vocab_size)] + list(zip(bounds, bounds[1:])) + [(bounds[1], bounds[-2]), (5, 5)]
        for start, stop in ranges:
            for table in ("E", "W"):
                rows = init_rows(jax.random.PRNGKey(5), vocab_size, dim, scheme, table, start, stop)
                assert rows.dtype == np.float32 and rows.shape == (stop - start, dim)
                np.testing.assert_array_equal(rows, np.asarray(getattr(whole, table))[start:stop],
                                              err_msg=f"V={vocab_size} {table}[{start}:{stop}]")


@pytest.mark.parametrize("scheme", ["word2vec", "glorot"])
def test_a_shard_made_on_a_device_holds_the_rows_and_zeros_past_the_vocabulary(scheme):
    from jaxgram.init import ROWS_PER_DRAW, init_shard

    vocab_size, dim, device = 2 * ROWS_PER_DRAW + 100, 3, jax.devices()[0]
    whole = init_params(jax.random.PRNGKey(6), vocab_size, dim, scheme)
    # Longer than a block (made in pieces, the last over the end of the one before), past the
    # vocabulary's end (padding), within one block, and empty.
    for start, stop in ((50, vocab_size + 7), (0, vocab_size), (ROWS_PER_DRAW - 3, ROWS_PER_DRAW + 9), (4, 4)):
        for table in ("E", "W"):
            shard = init_shard(jax.random.PRNGKey(6), vocab_size, dim, scheme, table, start, stop, device)
            assert shard.devices() == {device} and shard.shape == (stop - start, dim)
            expected = np.zeros((stop - start, dim), np.float32)
            drawn = np.asarray(getattr(whole, table))[start:stop]
            expected[:len(drawn)] = drawn
            np.testing.assert_array_equal(np.asarray(shard), expected, err_msg=f"{table}[{start}:{stop}]")
