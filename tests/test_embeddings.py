import numpy as np
import pytest
from gensim.models import KeyedVectors

from jaxgram import Embeddings, Params, Vocabulary
from jaxgram.errors import DataError

WORDS = ["car", "plane", "boat", "elephant", "lion", "fast", "slow", "green", "tree", "river"]


@pytest.fixture
def embeddings():
    vectors = np.random.default_rng(0).normal(size=(len(WORDS), 8)).astype(np.float32)
    return Embeddings(WORDS, vectors)


@pytest.fixture
def gensim_twin(embeddings):
    kv = KeyedVectors(vector_size=8)
    kv.add_vectors(WORDS, embeddings.vectors)
    return kv


def _same_ranking(ours, theirs):
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
def test_queries_agree_with_gensim(embeddings, gensim_twin):
    _same_ranking(embeddings.most_similar("car", topn=5), gensim_twin.most_similar("car", topn=5))
    _same_ranking(embeddings.most_similar(positive=["plane", "lion"], negative=["car"], topn=4),
                  gensim_twin.most_similar(positive=["plane", "lion"], negative=["car"], topn=4))
    _same_ranking(embeddings.most_similar_cosmul(positive=["plane", "lion"], negative=["car"], topn=4),
                  gensim_twin.most_similar_cosmul(positive=["plane", "lion"], negative=["car"], topn=4))
    assert embeddings.similarity("car", "tree") == pytest.approx(gensim_twin.similarity("car", "tree"), abs=1e-6)
    group = ["car", "plane", "boat", "elephant"]
    assert embeddings.doesnt_match(group) == gensim_twin.doesnt_match(group)


def test_mapping_interface(embeddings):
    assert len(embeddings) == 10 and "car" in embeddings and "truck" not in embeddings
    assert embeddings.key_to_index["boat"] == 2 and embeddings.index_to_key[2] == "boat"
    np.testing.assert_array_equal(embeddings["boat"], embeddings.vectors[2])
    assert all(w != "car" for w, _ in embeddings.most_similar("car", topn=9))


def test_unknown_word_lists_close_matches(embeddings):
    with pytest.raises(KeyError) as info:
        embeddings.most_similar("plain")
    assert "'plain' is not in the vocabulary" in str(info.value) and "plane" in str(info.value)


def test_from_params_tables():
    vocab = Vocabulary(("a", "b"), np.array([5, 3]))
    params = Params(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.array([[3.0, 0.0], [0.0, 5.0]], np.float32))
    np.testing.assert_array_equal(Embeddings.from_params(params, vocab, "E").vectors, params.E)
    np.testing.assert_array_equal(Embeddings.from_params(params, vocab, "W").vectors, params.W)
    np.testing.assert_array_equal(Embeddings.from_params(params, vocab, "mean")["b"], [0.0, 3.0])


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_round_trip_through_gensim(embeddings, tmp_path, binary):
    path = tmp_path / ("vectors.bin" if binary else "vectors.txt")
    embeddings.save_word2vec_format(path, binary=binary)
    loaded = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert loaded.index_to_key == WORDS
    np.testing.assert_array_equal(loaded.vectors, embeddings.vectors)
    ours = Embeddings.load_word2vec_format(path, binary=binary)
    np.testing.assert_array_equal(ours.vectors, embeddings.vectors)
    # and the other way: a file gensim wrote
    other = tmp_path / ("gensim.bin" if binary else "gensim.txt")
    loaded.save_word2vec_format(str(other), binary=binary)
    np.testing.assert_array_equal(Embeddings.load_word2vec_format(other, binary=binary).vectors, embeddings.vectors)


@pytest.mark.parametrize("content, line", [
    ("2 3\ncar 1 2 3\nplane 1 2\n", "line 3"),
    ("2 3\ncar 1 2 3\nplane 1 x 3\n", "line 3"),
    ("3 3\ncar 1 2 3\nplane 1 2 3\n", "line 1"),
    ("two 3\ncar 1 2 3\n", "line 1"),
])
def test_malformed_text_files_name_the_line(tmp_path, content, line):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=f"bad.txt.*{line}"):
        Embeddings.load_word2vec_format(path)


def test_truncated_binary_file_is_refused(embeddings, tmp_path):
    path = tmp_path / "vectors.bin"
    embeddings.save_word2vec_format(path, binary=True)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    with pytest.raises(DataError, match="vectors.bin: row 10.*truncated"):
        Embeddings.load_word2vec_format(path, binary=True)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_with_the_line(embeddings, tmp_path, binary, value):
    vectors = embeddings.vectors.copy()
    vectors[4, 2] = value
    path = tmp_path / ("vectors.bin" if binary else "vectors.txt")
    with np.errstate(invalid="ignore"):
        Embeddings(WORDS, vectors).save_word2vec_format(path, binary=binary)
    with pytest.raises(DataError, match=rf"{path.name}: line 6 has a value that is not finite"):
        Embeddings.load_word2vec_format(path, binary=binary)


def test_a_float32_overflow_in_text_is_refused(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("2 2\na 1 2\nb 1e39 2\n")
    with pytest.raises(DataError, match="big.txt: line 3 .*not finite"):
        Embeddings.load_word2vec_format(path)


@pytest.mark.parametrize("binary", [False, True])
def test_a_sha256sums_record_beside_the_file_is_checked(embeddings, tmp_path, binary):
    """With a SHA256SUMS entry the file must match it; without an entry, or a record, it loads unchecked."""
    from jaxgram.fileio import SHA256SUMS, recorded_sha256, sha256_file, write_sha256sums

    name = "vectors.bin" if binary else "vectors.txt"
    path = tmp_path / name
    embeddings.save_word2vec_format(path, binary=binary)
    assert recorded_sha256(path) is None
    write_sha256sums(tmp_path, [name])
    assert (tmp_path / SHA256SUMS).read_text() == f"{sha256_file(path)}  {name}\n"  # `sha256sum -c` format
    np.testing.assert_array_equal(Embeddings.load_word2vec_format(path, binary=binary).vectors, embeddings.vectors)

    vectors = embeddings.vectors.copy()
    vectors[0, 0] = np.nextafter(vectors[0, 0], np.float32(np.inf))  # still a valid file, one value off
    Embeddings(WORDS, vectors).save_word2vec_format(path, binary=binary)
    with pytest.raises(DataError, match=rf"vectors file {path} does not match the sha256 recorded in .*{SHA256SUMS}"):
        Embeddings.load_word2vec_format(path, binary=binary)

    (tmp_path / SHA256SUMS).write_text(f"{'0' * 64} *other.bin\nnot a checksum line\n")
    assert recorded_sha256(path) is None
    np.testing.assert_array_equal(Embeddings.load_word2vec_format(path, binary=binary).vectors, vectors)
    (tmp_path / SHA256SUMS).write_text(f"{'0' * 64} *{name}\n")  # binary-mode entries count too
    with pytest.raises(DataError, match="does not match the sha256"):
        Embeddings.load_word2vec_format(path, binary=binary)
