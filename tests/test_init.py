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


@pytest.mark.parametrize("scheme", ["word2vec", "gensim"])
def test_drawing_a_table_holds_a_block_of_rows_not_a_table(scheme):
    from jaxgram.init import ROWS_PER_DRAW

    def scratch_bytes(vocab_size):
        compiled = init_params.lower(jax.random.PRNGKey(0), vocab_size, 64, scheme).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    small, large = scratch_bytes(2 * ROWS_PER_DRAW), scratch_bytes(40 * ROWS_PER_DRAW)
    assert large == small  # the tables grew 20x; the scratch did not
    assert large < 40 * ROWS_PER_DRAW * 64 * 4 / 4  # well under one table (the whole draw held several)


def test_every_row_is_drawn_when_the_blocks_do_not_divide_the_vocabulary():
    from jaxgram.init import ROWS_PER_DRAW

    rows = 2 * ROWS_PER_DRAW + 123
    E = np.asarray(init_params(jax.random.PRNGKey(5), rows, 8, "word2vec").E)
    assert np.all(np.abs(E).max(axis=1) > 0)  # no row left at its zero start
    assert len(np.unique(E, axis=0)) == rows  # and no block repeated another's draws
    assert abs(E[-ROWS_PER_DRAW:].mean()) < 2e-3 and E[-ROWS_PER_DRAW:].std() > 0.25 / 8
