"""Agreement metrics: a rotated copy agrees perfectly, unrelated vectors do not."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from eval.agreement import compare, sample_pairs, shared_words
from jaxgram.embeddings import Embeddings

WORDS = [f"w{i}" for i in range(300)]


def _random(seed, dim=16, words=WORDS):
    return Embeddings(words, np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_rotated_copy_has_the_same_geometry(seed):
    original = _random(seed)
    rotation = ortho_group.rvs(16, random_state=seed)
    rotated = Embeddings(WORDS, original.vectors @ rotation)
    result = compare(original, rotated, overlap_words=100, k=10, n_pairs=2000)
    assert result["overlap_at_k"] == pytest.approx(1.0)
    assert result["cosine_spearman"] == pytest.approx(1.0, abs=1e-6)
    assert result["procrustes_residual"] < 1e-4
    # ...while the raw coordinates disagree (the Embedding Geometry article's point: axes rotate).
    assert abs(np.corrcoef(original.vectors.ravel(), rotated.vectors.ravel())[0, 1]) < 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unrelated_vectors_disagree(seed):
    result = compare(_random(seed), _random(seed + 100), overlap_words=100, k=10, n_pairs=2000)
    assert result["overlap_at_k"] < 0.2
    assert abs(result["cosine_spearman"]) < 0.15
    assert result["procrustes_residual"] > 1.0


def test_noisy_copy_sits_between():
    original = _random(5)
    noisy = Embeddings(WORDS, original.vectors + 0.5 * np.random.default_rng(6).normal(size=original.vectors.shape))
    result = compare(original, noisy, overlap_words=100)
    assert 0.2 < result["overlap_at_k"] < 1.0
    assert 0.5 < result["cosine_spearman"] < 1.0


def test_only_shared_words_in_frequency_order_are_compared():
    a = _random(0, words=WORDS)
    b = _random(1, words=WORDS[50:] + ["extra"])
    assert shared_words(a, b) == WORDS[50:]
    result = compare(a, b, overlap_words=1000)
    assert result["shared_words"] == 250 and result["overlap_words"] == 250


def test_no_shared_words_is_reported_not_fatal():
    result = compare(_random(0, words=["a", "b"]), _random(1, words=["c", "d"]))
    assert result["overlap_at_k"] is None and result["shared_words"] == 0


def test_pair_sample_is_fixed_and_has_distinct_words():
    first, second = sample_pairs(50, 1000, seed=7), sample_pairs(50, 1000, seed=7)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, sample_pairs(50, 1000, seed=8))
    assert np.all(first[:, 0] != first[:, 1]) and first.min() >= 0 and first.max() < 50
