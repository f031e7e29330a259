"""The evaluate stage on real trainer outputs: every section present, values in range."""

import numpy as np
import pytest

from eval.config import DEFAULT_PROBES, EvalSettings
from eval.evaluate import cosine_matrix, evaluate_runs, load_vectors, pca_2d
from eval.probes import load_probes
from jaxgram.embeddings import Embeddings
from jaxgram.errors import DataError

SETTINGS = EvalSettings(overlap_words=50, cosine_pairs=500)


@pytest.fixture(scope="module")
def evaluation(synthetic_runs):
    return evaluate_runs(synthetic_runs, load_probes(DEFAULT_PROBES), SETTINGS)


def test_all_comparisons_and_benchmarks_are_there(evaluation):
    assert set(evaluation["agreement"]) == {"jaxgram_vs_gensim", "gensim_a_vs_b", "jaxgram_a_vs_b"}
    for entry in evaluation["agreement"].values():
        assert 0 <= entry["overlap_at_k"] <= 1
        assert -1 <= entry["cosine_spearman"] <= 1
        assert 0 <= entry["procrustes_residual"] <= 2
        assert entry["overlap_words"] == 50
    for name in ("jaxgram", "gensim"):
        analogies = evaluation["benchmarks"][name]["analogies"]["3cosadd"]["total"]
        assert analogies["evaluated"] == 0 and analogies["oov_skipped"] > 0  # synthetic words only
        assert evaluation["probes"][name]["oov_count"] > 0


def test_figure_data(evaluation, synthetic_runs):
    pca = evaluation["figures"]["pca"]
    # The synthetic corpus knows 4 of the probe words.
    assert pca["jaxgram_before"]["words"] == ["murder", "crime", "school", "king"]
    assert len(pca["jaxgram_after"]["xy"]) == 4
    assert evaluation["figures"]["loss_per_epoch"] == evaluation["trainers"]["jaxgram"]["loss_per_epoch"]
    heat = evaluation["figures"]["heatmap"]["gensim"]
    assert np.allclose(np.diag(heat["cosines"]), 1.0, atol=1e-5)


def test_pca_recovers_a_planar_layout():
    words = ["a", "b", "c", "d", "e"]
    plane = np.random.default_rng(0).normal(size=(5, 2))
    basis = np.linalg.qr(np.random.default_rng(1).normal(size=(10, 2)))[0]
    result = pca_2d(Embeddings(words, plane @ basis.T), words)
    assert sum(result["explained"]) == pytest.approx(1.0, abs=1e-5)
    xy = np.asarray(result["xy"])
    # Pairwise distances survive the projection.
    original = np.linalg.norm(plane[:, None] - plane[None], axis=-1)
    projected = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    assert np.allclose(original, projected, atol=1e-4)


def test_cosine_matrix_skips_unknown_words():
    embeddings = Embeddings(["x", "y"], np.array([[1, 0], [1, 1]], dtype=np.float32))
    result = cosine_matrix(embeddings, ["x", "nope", "y"])
    assert result["words"] == ["x", "y"]
    assert result["cosines"][0][1] == pytest.approx(np.sqrt(0.5))


def test_missing_vectors_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "vectors.bin")):
        load_vectors(tmp_path)
