"""How much two embeddings of the same corpus agree, up to a rotation (the Embedding Geometry article's point).

Uses jaxgram.geometry for the overlap and Procrustes residual; adds the Spearman of cosines
over a fixed random sample of word pairs.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from jaxgram.geometry import neighbour_overlap, procrustes_residual


def shared_words(emb_a, emb_b) -> list[str]:
    """Words both models know, in emb_a's order (most frequent first)."""
    return [w for w in emb_a.index_to_key if w in emb_b]


def sample_pairs(n_words: int, n_pairs: int, seed: int) -> np.ndarray:
    """[n, 2] distinct-word index pairs drawn with a fixed seed (same pairs for every comparison)."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n_words, n_pairs)
    # offset in [1, n_words) guarantees the two words differ
    second = (first + rng.integers(1, max(n_words, 2), n_pairs)) % n_words
    return np.stack([first, second], axis=1)


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def cosine_spearman(emb_a, emb_b, words: list[str], pairs: np.ndarray) -> float:
    """Spearman correlation between the two models' cosines of the same word pairs."""
    unit_a = _unit(np.asarray([emb_a[w] for w in words], dtype=np.float64))
    unit_b = _unit(np.asarray([emb_b[w] for w in words], dtype=np.float64))
    cos_a = np.sum(unit_a[pairs[:, 0]] * unit_a[pairs[:, 1]], axis=1)
    cos_b = np.sum(unit_b[pairs[:, 0]] * unit_b[pairs[:, 1]], axis=1)
    return float(stats.spearmanr(cos_a, cos_b)[0])


def compare(emb_a, emb_b, overlap_words: int = 1000, k: int = 10, n_pairs: int = 5000, pairs_seed: int = 0) -> dict:
    """Neighbour overlap@k over the most frequent shared words, cosine Spearman, Procrustes residual."""
    words = shared_words(emb_a, emb_b)
    if len(words) < 2:
        return {"shared_words": len(words), "overlap_words": 0, "overlap_at_k": None, "k": k,
                "cosine_spearman": None, "cosine_pairs": 0, "procrustes_residual": None}
    frequent = words[:overlap_words]
    pairs = sample_pairs(len(words), n_pairs, pairs_seed)
    matrix_a = np.asarray([emb_a[w] for w in words])
    matrix_b = np.asarray([emb_b[w] for w in words])
    return {
        "shared_words": len(words),
        "overlap_words": len(frequent),
        "k": k,
        "overlap_at_k": neighbour_overlap(emb_a, emb_b, frequent, k=k),
        "cosine_pairs": len(pairs),
        "cosine_spearman": cosine_spearman(emb_a, emb_b, words, pairs),
        "procrustes_residual": procrustes_residual(matrix_a, matrix_b),
    }
