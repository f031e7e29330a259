"""The seeds' probes: one editable TOML file; unknown words are counted, never a crash."""

import numpy as np
import pytest

from eval.config import DEFAULT_PROBES
from eval.probes import load_probes, run_probes
from jaxgram.embeddings import Embeddings
from jaxgram.errors import ConfigError, DataError


def test_bundled_probes_hold_the_seed_articles_probes():
    probes = load_probes(DEFAULT_PROBES)
    assert probes.cosine_pairs == (("murder", "crime"), ("crime", "punishment"), ("murder", "death"), ("love", "crime"))
    assert probes.neighbour_words == ("school", "university", "monastery")
    assert (("king", "woman"), ("man",)) in probes.analogies
    assert set(probes.neighbour_words) <= set(probes.plot_words)


def _embeddings(words, seed=0, dim=6):
    return Embeddings(words, np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32))


def test_probes_on_a_model_missing_some_words():
    probes = load_probes(DEFAULT_PROBES)
    known = ["murder", "crime", "love", "school", "king", "man", "woman", "queen", "the", "a", "of"]
    embeddings = _embeddings(known)
    result = run_probes(embeddings, probes)
    expected_oov = sorted(set(probes.all_words) - set(known))
    assert result["oov"] == expected_oov and result["oov_count"] == len(expected_oov)
    cosines = {tuple(c["pair"]): c["cosine"] for c in result["cosines"]}
    assert cosines[("murder", "crime")] == pytest.approx(embeddings.similarity("murder", "crime"))
    assert cosines[("crime", "punishment")] is None
    neighbours = {entry["word"]: entry["neighbours"] for entry in result["neighbours"]}
    assert [entry["word"] for entry in result["neighbours"]] == list(probes.neighbour_words)
    assert neighbours["university"] is None
    school = neighbours["school"]
    assert len(school) == min(probes.topn, len(known) - 1) and "school" not in [w for w, _ in school]
    answers = result["analogies"][0]["answers"]
    assert [w for w, _ in answers] == [w for w, _ in embeddings.most_similar(["king", "woman"], ["man"], topn=5)]


def test_a_planted_analogy_is_found():
    probes = load_probes(DEFAULT_PROBES)
    words = ["king", "man", "woman", "queen", "crime", "murder"]
    vectors = np.random.default_rng(3).normal(size=(6, 8)).astype(np.float32)
    vectors[3] = vectors[0] - vectors[1] + vectors[2]
    result = run_probes(Embeddings(words, vectors), probes)
    assert result["analogies"][0]["answers"][0][0] == "queen"


def test_edited_probe_file_is_read(tmp_path):
    path = tmp_path / "probes.toml"
    path.write_text('cosine_pairs = [["x", "y"]]\nneighbour_words = ["x"]\ntopn = 1\nplot_words = ["x", "y"]\n')
    probes = load_probes(path)
    result = run_probes(_embeddings(["x", "y", "z"]), probes)
    assert len(result["neighbours"][0]["neighbours"]) == 1 and result["analogies"] == []


@pytest.mark.parametrize("text, key", [
    ('cosine_pairs = [["a"]]\n', "cosine_pairs"),
    ("topn = \"ten\"\n", "topn"),
    ("neighbours = [\"a\"]\n", "neighbours"),
    ('analogies = [{ positive = ["a"], wrong = ["b"] }]\n', "analogies"),
])
def test_bad_probe_files_name_the_key(tmp_path, text, key):
    path = tmp_path / "probes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key):
        load_probes(path)


def test_missing_probe_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="nowhere.toml"):
        load_probes(tmp_path / "nowhere.toml")
