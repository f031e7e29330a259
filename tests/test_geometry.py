import numpy as np

from jaxgram import Embeddings
from jaxgram.geometry import coordinate_correlation, cosine, neighbour_overlap, procrustes_residual


def _random_rotation(dim, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q


def test_cosine():
    assert abs(cosine([1, 0], [0, 3])) < 1e-12
    assert abs(cosine([1, 1], [2, 2]) - 1) < 1e-12
    assert abs(cosine([1, 0], [-1, 0]) + 1) < 1e-12


def test_rotation_leaves_geometry_and_scrambles_coordinates():
    A = np.random.default_rng(0).normal(size=(60, 12))
    B = A @ _random_rotation(12, 1)
    assert procrustes_residual(A, B) < 1e-6
    assert abs(coordinate_correlation(A, B)) < 0.3
    words = [f"w{i}" for i in range(60)]
    assert neighbour_overlap(Embeddings(words, A), Embeddings(words, B), words, k=5) == 1.0


def test_unrelated_spaces_are_far_apart():
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(200, 10)), rng.normal(size=(200, 10))
    assert procrustes_residual(A, B) > 1.0
    words = [f"w{i}" for i in range(200)]
    assert neighbour_overlap(Embeddings(words, A), Embeddings(words, B), words[:50], k=10) < 0.2
