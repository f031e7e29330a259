import jax
import numpy as np

from jaxgram.init import init_params


def test_word2vec_init_follows_word2vec_and_the_dostoevsky_article():
    params = init_params(jax.random.PRNGKey(0), 500, 40, "word2vec")
    E, W = np.asarray(params.E), np.asarray(params.W)
    assert E.shape == W.shape == (500, 40) and E.dtype == np.float32
    assert np.abs(E).max() <= 0.5 / 40 and np.abs(E).max() > 0.45 / 40
    assert abs(E.mean()) < 1e-3
    assert not W.any()


def test_glorot_init_scale_and_keys():
    params = init_params(jax.random.PRNGKey(0), 500, 40, "glorot")
    limit = np.sqrt(6 / (500 + 40))
    assert np.abs(np.asarray(params.E)).max() <= limit and np.asarray(params.W).std() > limit / 3
    other = init_params(jax.random.PRNGKey(1), 500, 40, "glorot")
    assert not np.array_equal(params.E, other.E)
    np.testing.assert_array_equal(params.E, init_params(jax.random.PRNGKey(0), 500, 40, "glorot").E)
