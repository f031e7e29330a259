"""Geometry that survives a change of basis: cosines, Procrustes alignment, neighbour overlap."""

from __future__ import annotations

import numpy as np


def cosine(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _unit_rows(matrix) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def procrustes_residual(A, B) -> float:
    """||A R - B|| / ||B|| for the best orthogonal R, after normalising every row to unit length.

    Near 0 when the two spaces differ only by a rotation/reflection; near sqrt(2) when unrelated.
    """
    A, B = _unit_rows(A), _unit_rows(B)
    u, _, vt = np.linalg.svd(A.T @ B)
    rotation = u @ vt
    return float(np.linalg.norm(A @ rotation - B) / np.linalg.norm(B))


def coordinate_correlation(A, B) -> float:
    """Pearson correlation of raw coordinates, entry by entry: low when the axes have rotated."""
    return float(np.corrcoef(np.asarray(A, np.float64).ravel(), np.asarray(B, np.float64).ravel())[0, 1])


def neighbour_overlap(emb_a, emb_b, words, k: int = 10) -> float:
    """Mean Jaccard overlap of the top-k neighbour sets of `words` in two Embeddings."""
    scores = []
    for word in words:
        near_a = {w for w, _ in emb_a.most_similar(word, topn=k)}
        near_b = {w for w, _ in emb_b.most_similar(word, topn=k)}
        scores.append(len(near_a & near_b) / len(near_a | near_b))
    return float(np.mean(scores))
