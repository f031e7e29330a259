import bz2
import gzip
import subprocess
import sys

import numpy as np
import pytest
from gensim.models import KeyedVectors

from jaxgram import Embeddings, Params, UnknownWordError, Vocabulary
from jaxgram.embeddings import UnknownAttributeError
from jaxgram.errors import ConfigError, DataError

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


# -- gensim parity: counts, to_gensim, restricted and vector queries, n_similarity, rank -------------

@pytest.fixture
def pair_of_200():
    """200 random words as Embeddings and as gensim's KeyedVectors: room for restrict_vocab to matter."""
    words = [f"w{i}" for i in range(200)]
    vectors = np.random.default_rng(3).normal(size=(len(words), 16)).astype(np.float32)
    keyed = KeyedVectors(vector_size=16)
    keyed.add_vectors(words, vectors)
    return Embeddings(words, vectors), keyed


QUERIES = [dict(positive="w3"), dict(positive="w120"), dict(positive=["w3", "w7"], negative=["w150"]),
           dict(positive=["w9", "w190"], negative="w2")]


@pytest.mark.parametrize("restrict_vocab", [None, 1, 5, 50, 200, 10_000])
@pytest.mark.parametrize("query", QUERIES)
def test_most_similar_with_restrict_vocab_agrees_with_gensim(pair_of_200, restrict_vocab, query):
    ours, keyed = pair_of_200
    _same_ranking(ours.most_similar(**query, topn=7, restrict_vocab=restrict_vocab),
                  keyed.most_similar(**query, topn=7, restrict_vocab=restrict_vocab))
    every = ours.most_similar(**query, topn=None, restrict_vocab=restrict_vocab)
    np.testing.assert_allclose(every, keyed.most_similar(**query, topn=None, restrict_vocab=restrict_vocab),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
@pytest.mark.parametrize("restrict_vocab", [1, 5, 50, 200, 10_000])
@pytest.mark.parametrize("query", QUERIES)
def test_most_similar_cosmul_with_restrict_vocab_is_gensims_ranking_of_the_first_words(pair_of_200, restrict_vocab,
                                                                                       query):
    # gensim 4.4's most_similar_cosmul documents restrict_vocab but searches every word; its full
    # ranking, cut to the first restrict_vocab words, is what the documented meaning gives.
    ours, keyed = pair_of_200
    kept = [(w, s) for w, s in keyed.most_similar_cosmul(**query, topn=len(keyed))
            if keyed.key_to_index[w] < restrict_vocab]
    _same_ranking(ours.most_similar_cosmul(**query, topn=7, restrict_vocab=restrict_vocab), kept[:7])
    every = ours.most_similar_cosmul(**query, topn=None, restrict_vocab=restrict_vocab)
    np.testing.assert_allclose(every, keyed.most_similar_cosmul(**query, topn=None)[:restrict_vocab], rtol=1e-5)


@pytest.mark.parametrize("restrict_vocab", [None, 1, 30])
def test_similar_by_vector_agrees_with_gensim(pair_of_200, restrict_vocab):
    ours, keyed = pair_of_200
    for vector in np.random.default_rng(4).normal(size=(3, 16)).astype(np.float32) * [[0.1], [1.0], [25.0]]:
        _same_ranking(ours.similar_by_vector(vector, topn=10, restrict_vocab=restrict_vocab),
                      keyed.similar_by_vector(vector, topn=10, restrict_vocab=restrict_vocab))
        np.testing.assert_allclose(ours.similar_by_vector(vector, topn=None, restrict_vocab=restrict_vocab),
                                   keyed.similar_by_vector(vector, topn=None, restrict_vocab=restrict_vocab),
                                   rtol=1e-5, atol=1e-6)
    # Words and vectors mix, a vector counting as given (not normalised), as in gensim.
    mixed = dict(positive=["w4", 3.0 * ours["w8"]], negative=[ours["w11"]])
    _same_ranking(ours.most_similar(**mixed, topn=6), keyed.most_similar(**mixed, topn=6))


def test_n_similarity_and_rank_agree_with_gensim(pair_of_200):
    ours, keyed = pair_of_200
    for ws1, ws2 in [(["w1"], ["w2"]), (["w1", "w5", "w9"], ["w2", "w150"]), (["w7", "w7"], ["w7"])]:
        assert ours.n_similarity(ws1, ws2) == pytest.approx(float(keyed.n_similarity(ws1, ws2)), abs=1e-6)
    ranks = [(ours.rank(a, b), keyed.rank(a, b)) for a in ("w0", "w17", "w199") for b in ours.index_to_key if b != a]
    assert [mine for mine, _ in ranks] == [theirs for _, theirs in ranks]
    assert sorted(mine for mine, _ in ranks[:199]) == list(range(1, 200))  # every other word, each rank once


def test_counts_from_the_constructor_and_from_a_vocabulary():
    vectors = np.random.default_rng(0).normal(size=(len(WORDS), 8)).astype(np.float32)
    counts = [100 - 7 * i for i in range(len(WORDS))]
    embeddings = Embeddings(WORDS, vectors, counts=counts)
    assert [embeddings.get_vecattr(w, "count") for w in WORDS] == counts
    vocab = Vocabulary(("a", "b"), np.array([5, 3]))
    params = Params(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32))
    from_vocab = Embeddings.from_params(params, vocab, "mean")
    assert (from_vocab.get_vecattr("a", "count"), from_vocab.get_vecattr("b", "count")) == (5, 3)


def _keyed_with_counts(embeddings, counts):
    keyed = KeyedVectors(vector_size=embeddings.vector_size)
    keyed.add_vectors(embeddings.index_to_key, embeddings.vectors)
    for word, count in zip(embeddings.index_to_key, counts):
        keyed.set_vecattr(word, "count", count)
    return keyed


@pytest.mark.parametrize("binary", [False, True])
def test_fvocab_counts_are_the_ones_gensim_reads(embeddings, tmp_path, binary):
    # gensim writes the vectors and their -save-vocab file (most frequent first), and reads them back.
    counts = [1000 // (i + 1) for i in range(len(WORDS))]
    path, vocab_path = tmp_path / "vectors", tmp_path / "vocab.txt"
    _keyed_with_counts(embeddings, counts).save_word2vec_format(str(path), fvocab=str(vocab_path), binary=binary)
    theirs = KeyedVectors.load_word2vec_format(str(path), fvocab=str(vocab_path), binary=binary)
    ours = Embeddings.load_word2vec_format(path, binary=binary, fvocab=vocab_path)
    assert ours.index_to_key == theirs.index_to_key
    assert [ours.get_vecattr(w, "count") for w in WORDS] == [theirs.get_vecattr(w, "count") for w in WORDS]


def test_to_gensim_is_a_keyedvectors_with_our_words_vectors_and_counts(embeddings):
    counts = [50 - i for i in range(len(WORDS))]
    keyed = Embeddings(WORDS, embeddings.vectors, counts).to_gensim()
    assert isinstance(keyed, KeyedVectors)
    assert keyed.index_to_key == WORDS and keyed.key_to_index == embeddings.key_to_index
    np.testing.assert_array_equal(keyed.vectors, embeddings.vectors)
    assert [keyed.get_vecattr(w, "count") for w in WORDS] == counts
    keyed.vectors[0] += 1.0  # a copy: gensim's in-place changes leave ours alone
    assert not np.array_equal(keyed.vectors[0], embeddings.vectors[0])
    _same_ranking(embeddings.most_similar("boat", topn=4), embeddings.to_gensim().most_similar("boat", topn=4))
    assert "count" not in embeddings.to_gensim().expandos  # no counts loaded: none made up


def test_a_word_the_fvocab_file_misses_has_no_count(embeddings, tmp_path):
    path, vocab_path = tmp_path / "vectors.txt", tmp_path / "vocab.txt"
    embeddings.save_word2vec_format(path)
    vocab_path.write_text("car 40\nboat 9\nsubmarine 3\n\ncar 41\n")  # a stranger, a blank line, a repeat
    loaded = Embeddings.load_word2vec_format(path, fvocab=vocab_path)
    assert [loaded.get_vecattr(w, "count") for w in ("car", "plane", "boat")] == [41, None, 9]
    keyed = loaded.to_gensim()
    assert [keyed.get_vecattr(w, "count") for w in ("car", "plane", "boat")] == [41, None, 9]


@pytest.mark.parametrize("content, line", [("car 3\nplane\n", 2), ("car x\n", 1), ("car -3\n", 1), ("car 3 4\n", 1)])
def test_a_malformed_fvocab_file_names_the_line(embeddings, tmp_path, content, line):
    path, vocab_path = tmp_path / "vectors.txt", tmp_path / "vocab.txt"
    embeddings.save_word2vec_format(path)
    vocab_path.write_text(content)
    with pytest.raises(DataError, match=rf"vocab.txt: line {line} must be `word count`"):
        Embeddings.load_word2vec_format(path, fvocab=vocab_path)


def test_an_altered_fvocab_file_is_refused_by_its_sha256_record(embeddings, tmp_path):
    from jaxgram.fileio import write_sha256sums

    embeddings.save_word2vec_format(tmp_path / "vectors.txt")
    (tmp_path / "vocab.txt").write_text("car 5\n")
    write_sha256sums(tmp_path, ["vectors.txt", "vocab.txt"])
    (tmp_path / "vocab.txt").write_text("car 6\n")
    with pytest.raises(DataError, match="vocabulary file .*vocab.txt does not match the sha256"):
        Embeddings.load_word2vec_format(tmp_path / "vectors.txt", fvocab=tmp_path / "vocab.txt")


BAD_CALLS = {
    "topn fraction": (lambda e: e.similar_by_vector(e["car"], topn=1.5), "topn=1.5 is not allowed: use an integer"),
    "topn bool": (lambda e: e.most_similar_cosmul("car", topn=True), "topn=True is not allowed"),
    "restrict 0": (lambda e: e.most_similar("car", restrict_vocab=0), "restrict_vocab=0 is not allowed: use an integer >= 1"),
    "restrict negative": (lambda e: e.most_similar_cosmul("car", restrict_vocab=-5), "restrict_vocab=-5 is not allowed"),
    "restrict in evaluation": (lambda e: e.evaluate_word_pairs("pairs.tsv", restrict_vocab=0), "restrict_vocab=0"),
    "clip start": (lambda e: e.most_similar("car", clip_start=-3), "clip_start=-3 is not allowed: use an integer >= 0"),
    "clip end": (lambda e: e.most_similar("car", clip_start=4, clip_end=4),
                 r"clip_end=4 is not allowed: use an integer above clip_start \(4\)"),
    "vector shape": (lambda e: e.similar_by_vector(np.ones(3)), r"a word or a vector of shape \(8,\)"),
    "term type": (lambda e: e.most_similar(positive=[[0.5] * 8]), r"a query term must be a word, a row number or a vector"),
    "weighted cosmul": (lambda e: e.most_similar_cosmul(positive=[("car", 2.0)]), r"a query term must be .*got tuple"),
    "no terms": (lambda e: e.most_similar(positive=[], negative=[]), "at least one positive or negative word"),
    "no words": (lambda e: e.n_similarity([], ["car"]), "at least one word in each list"),
    "no positive": (lambda e: e.most_similar_cosmul(negative=["car"]), "at least one positive word"),
    "similarity function": (lambda e: e.evaluate_word_analogies("questions.txt", similarity_function="cosine"),
                            "similarity_function='cosine' is not allowed: choose most_similar or most_similar_cosmul"),
    "total_vec": (lambda e: e.save_word2vec_format("never.txt", total_vec=0), "total_vec=0 is not allowed"),
    "fvocab without counts": (lambda e: e.save_word2vec_format("never.txt", fvocab="never.vocab"),
                              "fvocab= writes each word's 'count', and these vectors have none"),
    "datatype": (lambda e: Embeddings.load_word2vec_format("never.txt", datatype=np.float16),
                 "datatype=float16 is not allowed: jaxgram's vectors are float32"),
    "dtype": (lambda e: Embeddings(vector_size=4, dtype=np.float64), "dtype=float64 is not allowed"),
    "no vectors": (lambda e: Embeddings(WORDS), r"Embeddings\(words, vectors\), or gensim's KeyedVectors\(vector_size\)"),
    "both forms": (lambda e: Embeddings(WORDS, vector_size=8), "words and their vectors, or gensim's vector_size and "
                   "count: not both"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_are_one_line_config_errors_naming_what_is_allowed(embeddings, name, tmp_path, monkeypatch):
    """ConfigError is a ValueError, as gensim's own refusals are; a refused save writes nothing."""
    monkeypatch.chdir(tmp_path)
    call, message = BAD_CALLS[name]
    with pytest.raises(ConfigError, match=message) as info:
        call(embeddings)
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("attr, counts, message", [
    ("frequency", None, "attr='frequency' is not stored: these vectors' per-word attributes are none"),
    ("frequency", range(10), "attr='frequency' is not stored: these vectors' per-word attributes are 'count'"),
    ("count", None, "no word counts are loaded: pass fvocab="),
])
def test_a_missing_vecattr_is_a_key_error_in_words(embeddings, attr, counts, message):
    """gensim raises a bare KeyError('count'); ours is a KeyError too, one line saying what is there."""
    with pytest.raises(KeyError, match=message) as info:
        Embeddings(WORDS, embeddings.vectors, counts).get_vecattr("car", attr)
    assert isinstance(info.value, UnknownAttributeError) and str(info.value) == info.value.args[0]


@pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
@pytest.mark.parametrize("topn", [0, -3, np.uint8(0)])
def test_topn_below_1_gives_no_results_as_in_gensim(embeddings, gensim_twin, topn):
    for method in ("most_similar", "most_similar_cosmul"):
        assert getattr(embeddings, method)("car", topn=topn) == getattr(gensim_twin, method)("car", topn=topn) == []


@pytest.mark.parametrize("call", [
    lambda e: e.rank("car", "truck"),
    lambda e: e.n_similarity(["car"], ["boat", "truck"]),
    lambda e: e.most_similar_cosmul(["truck"], restrict_vocab=3),
    lambda e: e.most_similar(positive=[e["car"]], negative=["truck"]),
    lambda e: Embeddings(WORDS, e.vectors, range(10)).get_vecattr("truck", "count"),
])
def test_unknown_words_are_unknown_word_errors(embeddings, call):
    with pytest.raises(UnknownWordError, match="'truck' is not in the vocabulary"):
        call(embeddings)


@pytest.mark.parametrize("counts, message", [([1, 2], "counts has 2 entries for 10 words"),
                                             ([-1] * 10, "integers >= 0"), (["7"] * 10, "integers >= 0")])
def test_bad_counts_are_refused(embeddings, counts, message):
    with pytest.raises(ConfigError, match=message):
        Embeddings(WORDS, embeddings.vectors, counts)


# -- gensim's own KeyedVectors ------------------------------------------------------------------------


def test_trained_and_loaded_vectors_are_gensims_keyedvectors(embeddings, tmp_path):
    from jaxgram.vocab import build_vocabulary

    vocab = build_vocabulary([WORDS], min_count=1)
    params = Params(np.asarray(embeddings.vectors), np.zeros_like(embeddings.vectors))
    embeddings.save_word2vec_format(tmp_path / "v.bin", binary=True)
    for vectors in (Embeddings.from_params(params, vocab), Embeddings.load_word2vec_format(tmp_path / "v.bin", binary=True)):
        assert isinstance(vectors, KeyedVectors) and isinstance(vectors, Embeddings)


def test_gensims_own_queries_work_on_our_vectors(embeddings, gensim_twin):
    _same_ranking(embeddings.similar_by_word("car", topn=3), gensim_twin.similar_by_word("car", topn=3))
    np.testing.assert_array_equal(embeddings.get_vector("lion"), gensim_twin.get_vector("lion"))
    np.testing.assert_allclose(embeddings.get_vector("lion", norm=True), gensim_twin.get_vector("lion", norm=True))
    assert embeddings.distance("car", "boat") == pytest.approx(gensim_twin.distance("car", "boat"))
    np.testing.assert_allclose(embeddings.distances("car", ["boat", "tree"]), gensim_twin.distances("car", ["boat", "tree"]))
    assert embeddings.closer_than("car", "boat") == gensim_twin.closer_than("car", "boat")
    np.testing.assert_allclose(embeddings.get_mean_vector(["car", "lion"]), gensim_twin.get_mean_vector(["car", "lion"]))
    np.testing.assert_allclose(embeddings.get_normed_vectors(), gensim_twin.get_normed_vectors())
    assert embeddings.has_index_for("river") and not embeddings.has_index_for("ocean")
    np.testing.assert_array_equal(embeddings[["car", "tree"]], gensim_twin[["car", "tree"]])
    with pytest.raises(UnknownWordError, match="'ocean' is not in the vocabulary"):
        embeddings.get_vector("ocean")  # gensim's lookup, our one-line error (a KeyError still)


def test_glove_files_without_a_header_load_with_no_header(embeddings, tmp_path):
    path = tmp_path / "glove.txt"
    embeddings.save_word2vec_format(path)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))  # GloVe: no `V D` line
    theirs = KeyedVectors.load_word2vec_format(str(path), no_header=True)
    ours = Embeddings.load_word2vec_format(path, no_header=True)
    assert ours.index_to_key == theirs.index_to_key == WORDS
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    with pytest.raises(DataError, match="line 1 must be the header"):
        Embeddings.load_word2vec_format(path)


@pytest.mark.parametrize("binary", [False, True])
def test_gz_files_load_and_limit_reads_the_first_rows(embeddings, tmp_path, binary):
    import gzip

    plain = tmp_path / ("v.bin" if binary else "v.txt")
    embeddings.save_word2vec_format(plain, binary=binary)
    packed = plain.with_name(plain.name + ".gz")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    loaded = Embeddings.load_word2vec_format(packed, binary=binary)
    np.testing.assert_array_equal(loaded.vectors, embeddings.vectors)
    first = Embeddings.load_word2vec_format(packed, binary=binary, limit=4)
    theirs = KeyedVectors.load_word2vec_format(str(packed), binary=binary, limit=4)
    assert first.index_to_key == theirs.index_to_key == WORDS[:4]
    np.testing.assert_array_equal(first.vectors, embeddings.vectors[:4])
    with pytest.raises(ConfigError, match="limit=0 is not allowed"):
        Embeddings.load_word2vec_format(packed, binary=binary, limit=0)


COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress}


@pytest.mark.parametrize("suffix", COMPRESSORS)
@pytest.mark.parametrize("binary", [False, True])
def test_gz_and_bz2_files_load_the_vectors_gensim_reads(embeddings, tmp_path, binary, suffix):
    """A .bin.gz (how GoogleNews ships), .bin.bz2, .txt.gz or .txt.bz2 loads the vectors of the plain file, as
    gensim's reader loads them; with limit, the first rows."""
    plain = tmp_path / ("v.bin" if binary else "v.txt")
    embeddings.save_word2vec_format(plain, binary=binary)
    packed = plain.with_name(plain.name + suffix)
    packed.write_bytes(COMPRESSORS[suffix](plain.read_bytes()))
    ours = Embeddings.load_word2vec_format(packed, binary=binary)
    theirs = KeyedVectors.load_word2vec_format(str(packed), binary=binary)
    assert ours.index_to_key == theirs.index_to_key == WORDS
    np.testing.assert_array_equal(ours.vectors, embeddings.vectors)
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)
    first = Embeddings.load_word2vec_format(packed, binary=binary, limit=3)
    assert first.index_to_key == WORDS[:3]


def test_the_cli_reads_bin_gz_and_bin_bz2_as_binary(embeddings, tmp_path):
    """`jaxgram neighbors --vectors X.bin.gz` (or .bin.bz2) infers binary from the name, as for .bin: the same
    answer from each, where reading a .bin.gz as text was refused."""
    from jaxgram.word2vec_format import is_binary_name

    plain = tmp_path / "v.bin"
    embeddings.save_word2vec_format(plain, binary=True)
    answers = []
    for suffix, compress in COMPRESSORS.items():
        path = plain.with_name(plain.name + suffix)
        path.write_bytes(compress(plain.read_bytes()))
        assert is_binary_name(path)
        result = subprocess.run([sys.executable, "-m", "jaxgram", "neighbors", "car", "--topn", "3", "--vectors",
                                 str(path)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        answers.append(result.stdout)
    assert [line.split("\t")[0] for line in answers[0].splitlines()] == [w for w, _ in embeddings.most_similar("car", topn=3)]
    assert answers[1] == answers[0]
    assert is_binary_name(plain)
    assert not any(map(is_binary_name, ["v.txt", "v.txt.gz", "v.gz", "v.bin.txt", "binary"]))


@pytest.mark.parametrize("suffix", COMPRESSORS)
def test_a_compressed_files_sha256_record_is_checked_as_it_streams(embeddings, tmp_path, suffix):
    """The digest is the compressed file's, taken while it is read. With limit=2 the reading stops after two
    rows and the rest is still hashed, so bytes changed past those rows are refused; a truncated file is
    refused as not matching its record, not as a broken stream."""
    from jaxgram.fileio import write_sha256sums

    plain = tmp_path / "v.bin"
    embeddings.save_word2vec_format(plain, binary=True)
    packed = plain.with_name(plain.name + suffix)
    original = COMPRESSORS[suffix](plain.read_bytes())
    packed.write_bytes(original)
    write_sha256sums(tmp_path, [packed.name])
    assert Embeddings.load_word2vec_format(packed, binary=True, limit=2).index_to_key == WORDS[:2]
    packed.write_bytes(original + COMPRESSORS[suffix](b"\n"))  # still a valid file: one more newline at the end
    assert KeyedVectors.load_word2vec_format(str(packed), binary=True).index_to_key == WORDS
    with pytest.raises(DataError, match=rf"vectors file {packed} does not match the sha256"):
        Embeddings.load_word2vec_format(packed, binary=True, limit=2)
    packed.write_bytes(original[:-30])
    with pytest.raises(DataError, match=rf"vectors file {packed} does not match the sha256"):
        Embeddings.load_word2vec_format(packed, binary=True)


def test_blank_lines_after_the_rows_are_ignored_as_gensim_does(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("2 3\ncar 1 2 3\nplane 4 5 6\n\n  \n\n")
    assert Embeddings.load_word2vec_format(path).index_to_key == ["car", "plane"]
    assert KeyedVectors.load_word2vec_format(str(path)).index_to_key == ["car", "plane"]
    path.write_text("2 3\ncar 1 2 3\nplane 4 5 6\n\nboat 7 8 9\n")
    with pytest.raises(DataError, match="declares 2 words but the file has more rows after line 3"):
        Embeddings.load_word2vec_format(path)


def test_save_and_load_round_trip_without_pickle(embeddings, tmp_path):
    counted = Embeddings(WORDS, embeddings.vectors, [10 * i if i != 3 else None for i in range(len(WORDS))])
    counted.save(tmp_path / "vectors.npz")
    loaded = Embeddings.load(tmp_path / "vectors.npz")
    assert loaded.index_to_key == WORDS and loaded.get_vecattr("car", "count") == 0
    assert loaded.get_vecattr("elephant", "count") is None and loaded.get_vecattr("river", "count") == 90
    np.testing.assert_array_equal(loaded.vectors, embeddings.vectors)
    # An archive holding a pickled object is refused, never unpickled.
    np.savez(tmp_path / "evil.npz", words=np.array([object()], dtype=object), vectors=np.zeros((1, 2)))
    with pytest.raises(DataError, match="evil.npz"):
        Embeddings.load(tmp_path / "evil.npz")


# -- gensim's state model: its mutators, vecattrs, query forms and writer options (issue 29) --------


def _rows(seed, count, dim=16):
    return np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)


def test_queries_follow_gensims_mutators_without_a_refresh(pair_of_200):
    """kv[w] = v, add_vectors and sort_by_descending_frequency after a first query (which computes the norms): the
    next queries answer for the vectors as they are now, as a gensim KeyedVectors built from them does. gensim's
    own needs fill_norms(force=True) after each; ours also takes that refresh."""
    ours, keyed = pair_of_200
    ours.most_similar("w3")
    ours["w3"] = keyed["w3"] = _rows(7, 1)[0]
    keyed.fill_norms(force=True)
    _same_ranking(ours.most_similar("w3", topn=5), keyed.most_similar("w3", topn=5))
    ours.fill_norms(force=True)
    _same_ranking(ours.most_similar("w3", topn=5), keyed.most_similar("w3", topn=5))

    added = _rows(8, 2)
    ours.add_vectors(["new1", "new2"], added)
    keyed.add_vectors(["new1", "new2"], added)
    keyed.fill_norms(force=True)
    _same_ranking(ours.most_similar("new1", topn=5), keyed.most_similar("new1", topn=5))
    assert ours.most_similar(positive=[added[1]], topn=1)[0][0] == "new2"

    counts = np.random.default_rng(9).permutation(len(ours))
    for kv in (ours, keyed):
        for word, count in zip(kv.index_to_key, counts.tolist()):
            kv.set_vecattr(word, "count", count)
        kv.sort_by_descending_frequency()
    keyed.fill_norms(force=True)
    assert ours.index_to_key == keyed.index_to_key and ours.get_vecattr(0, "count") == len(ours) - 1
    np.testing.assert_array_equal(ours.vectors, keyed.vectors)
    _same_ranking(ours.most_similar("w3", topn=5, restrict_vocab=50), keyed.most_similar("w3", topn=5, restrict_vocab=50))


def test_counts_are_gensims_vecattrs(embeddings):
    """Counts live in gensim's "count" vecattr: set_vecattr changes what get_vecattr, sort_by_descending_frequency,
    vectors_for_all(copy_vecattrs=True) and to_gensim see, and words added later get a count (0) too."""
    counts = [100 - 7 * i for i in range(len(WORDS))]
    counted = Embeddings(WORDS, embeddings.vectors, counts)
    assert counted.expandos["count"].tolist() == counts
    counted.set_vecattr("river", "count", 500)
    counted.add_vectors(["truck"], _rows(1, 1, 8))
    assert counted.get_vecattr("river", "count") == 500 and counted.get_vecattr("truck", "count") == 0
    counted.sort_by_descending_frequency()
    assert counted.index_to_key[:2] == ["river", "car"] and counted.index_to_key[-1] == "truck"
    np.testing.assert_array_equal(counted["river"], embeddings["river"])
    copied = counted.vectors_for_all(["boat", "river", "ocean"], copy_vecattrs=True)
    assert copied.index_to_key == ["boat", "river"]
    assert [copied.get_vecattr(w, "count") for w in copied.index_to_key] == [86, 500]
    assert counted.to_gensim().expandos["count"].tolist() == counted.expandos["count"].tolist()


class _ExactIndexer:
    """gensim's indexer protocol, which its AnnoyIndexer implements: most_similar(vector, num_neighbors) gives
    (key, similarity) pairs for a unit query vector. This one searches every word exactly."""

    def __init__(self, keyed):
        self.keyed, self.queries = keyed, []

    def most_similar(self, vector, num_neighbors):
        self.queries.append(vector)
        return self.keyed.similar_by_vector(vector, topn=num_neighbors)


@pytest.mark.parametrize("query", [
    dict(positive=[5, "w9"]),
    dict(positive=[np.int64(120)], negative=["w2"]),
    dict(positive=[("w3", 2.0), ("w7", 0.5)], negative=[("w150", -1.0)]),
    dict(positive=[("w3", 1.0), (_rows(2, 1)[0], 3.0)]),
    dict(positive="w3", clip_start=20, clip_end=120),
    dict(positive=["w3", "w40"], clip_start=30),
    dict(positive="w3", clip_start=20, restrict_vocab=60),
])
def test_most_similar_takes_gensims_query_forms(pair_of_200, query):
    """Row numbers, (term, weight) pairs and clip_start/clip_end, as gensim's most_similar takes them."""
    ours, keyed = pair_of_200
    _same_ranking(ours.most_similar(**query, topn=6), keyed.most_similar(**query, topn=6))
    np.testing.assert_allclose(ours.most_similar(**query, topn=None), keyed.most_similar(**query, topn=None), rtol=1e-5,
                               atol=1e-6)


def test_most_similar_hands_an_integer_topn_to_the_indexer(pair_of_200):
    ours, keyed = pair_of_200
    indexer = _ExactIndexer(ours)
    assert ours.most_similar("w3", topn=4, indexer=indexer) == keyed.most_similar("w3", topn=4, indexer=_ExactIndexer(ours))
    np.testing.assert_allclose(indexer.queries[0], ours.get_vector("w3", norm=True), rtol=1e-6)
    assert ours.most_similar("w3", topn=4, indexer=indexer)[0][0] == "w3"  # an indexer does not leave the inputs out
    assert isinstance(ours.most_similar("w3", topn=None, indexer=indexer), np.ndarray) and len(indexer.queries) == 2


def test_most_similar_cosmul_takes_row_numbers(pair_of_200):
    ours, _ = pair_of_200
    _same_ranking(ours.most_similar_cosmul(positive=[3, "w7"], negative=[150], topn=5),
                  ours.most_similar_cosmul(positive=["w3", "w7"], negative=["w150"], topn=5))


@pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
@pytest.mark.parametrize("normalize", [lambda kv: kv.unit_normalize_all(), lambda kv: kv.init_sims(replace=True)])
def test_unit_normalize_all_works_on_read_only_input_and_keeps_zero_rows_zero(normalize):
    """The table given is copied (it stays as it was); a zero row (an untrained word) compares as 0 and stays
    zero, where gensim's division fills it with NaN."""
    table = _rows(3, 4, 3)
    table[2] = 0
    table.setflags(write=False)
    embeddings = Embeddings(["a", "b", "zero", "d"], table)
    normalize(embeddings)
    np.testing.assert_allclose(np.linalg.norm(embeddings.vectors, axis=1), [1, 1, 0, 1], rtol=1e-6)
    np.testing.assert_array_equal(embeddings.vectors[2], 0)
    assert table[0, 0] == _rows(3, 4, 3)[0, 0]
    assert dict(embeddings.most_similar("a", topn=3))["zero"] == 0.0
    np.testing.assert_allclose(embeddings.get_normed_vectors(), embeddings.vectors)


def _read_back(path, vocab_path=None, binary=False, no_header=False):
    """(words, vectors, counts) of a word2vec file as gensim reads it."""
    keyed = KeyedVectors.load_word2vec_format(str(path), fvocab=vocab_path and str(vocab_path), binary=binary,
                                              no_header=no_header)
    counts = [keyed.get_vecattr(w, "count") for w in keyed.index_to_key] if vocab_path else None
    return keyed.index_to_key, keyed.vectors, counts


@pytest.mark.parametrize("binary", [False, True])
def test_save_word2vec_format_writes_what_gensims_writes(embeddings, tmp_path, binary):
    """Most frequent first (ties in row order) with the vocabulary file in that order, and gensim's prefix:
    the files read back as gensim's own do, and the vocabulary files are byte for byte gensim's."""
    counts = [5, 50, 7, 50, 1, 9, 3, 8, 2, 6]
    files = {}
    for name, kv in (("ours", Embeddings(WORDS, embeddings.vectors, counts)), ("gensim", _keyed_with_counts(embeddings, counts))):
        files[name] = (tmp_path / f"{name}.vec", tmp_path / f"{name}.vocab")
        kv.save_word2vec_format(str(files[name][0]), fvocab=str(files[name][1]), binary=binary, prefix="p_")
    ours, theirs = _read_back(*files["ours"], binary=binary), _read_back(*files["gensim"], binary=binary)
    assert ours[0] == theirs[0] == ["p_plane", "p_elephant", "p_fast", "p_green", "p_boat", "p_river", "p_car",
                                    "p_slow", "p_tree", "p_lion"]
    np.testing.assert_array_equal(ours[1], theirs[1])
    assert ours[2] == theirs[2] == sorted(counts, reverse=True)
    assert files["ours"][1].read_bytes() == files["gensim"][1].read_bytes()


def test_save_word2vec_format_takes_write_header_total_vec_append_and_sort_attr(embeddings, tmp_path):
    """Two tables in one file, as gensim's Doc2Vec writes words and documents: the first declares the total,
    the second is appended without a header. Appending keeps what the file held; sort_attr names another
    vecattr, or one the vectors lack (row order)."""
    first, second = Embeddings(WORDS[:6], embeddings.vectors[:6]), Embeddings(WORDS[6:], embeddings.vectors[6:])
    path = tmp_path / "both.txt"
    first.save_word2vec_format(path, total_vec=len(WORDS))
    held = path.read_bytes()
    second.save_word2vec_format(path, write_header=False, append=True)
    assert path.read_bytes().startswith(held)
    words, vectors, _ = _read_back(path)
    assert words == WORDS and Embeddings.load_word2vec_format(path).index_to_key == WORDS
    np.testing.assert_array_equal(vectors, embeddings.vectors)

    first.save_word2vec_format(path, write_header=False)
    assert _read_back(path, no_header=True)[0] == Embeddings.load_word2vec_format(path, no_header=True).index_to_key == WORDS[:6]
    for word, rank in zip(WORDS[:6], [3, 1, 2, 6, 5, 4]):
        first.set_vecattr(word, "rank", rank)
    first.save_word2vec_format(path, sort_attr="rank")
    assert Embeddings.load_word2vec_format(path).index_to_key == ["elephant", "lion", "fast", "car", "boat", "plane"]
    first.save_word2vec_format(path, sort_attr="absent")
    assert Embeddings.load_word2vec_format(path).index_to_key == WORDS[:6]


def test_refusals_are_the_exceptions_a_gensim_user_catches(tmp_path):
    """A malformed file is a DataError that is also a ValueError, and an undecodable word also the
    UnicodeDecodeError gensim raises, so `except ValueError` / `except UnicodeDecodeError` written for gensim
    catch them; `unicode_errors="ignore"` then loads the file, its vocabulary file included."""
    path = tmp_path / "bad.txt"
    path.write_text("2 3\ncar 1 2 3\nplane 1 x 3\n")
    for load in (Embeddings.load_word2vec_format, KeyedVectors.load_word2vec_format):
        with pytest.raises(ValueError):
            load(str(path))
    path.write_bytes(b"2 2\ncar 1 2\nbo\xe3\x83 3 4\n")
    (tmp_path / "vocab.txt").write_bytes(b"car 7\nbo\xe3\x83 5\n")
    with pytest.raises(UnicodeDecodeError, match=r"bad.txt: the word on line 3 is not valid utf8") as info:
        Embeddings.load_word2vec_format(path)
    assert isinstance(info.value, DataError)
    loaded = Embeddings.load_word2vec_format(path, fvocab=tmp_path / "vocab.txt", unicode_errors="ignore")
    assert loaded.index_to_key == ["car", "bo"] and loaded.get_vecattr("bo", "count") == 5


@pytest.mark.fault
def test_the_cli_still_says_an_undecodable_word_in_one_line_with_exit_2(tmp_path):
    """DataError became a ValueError (and this one a UnicodeDecodeError): the CLI's answer is unchanged."""
    path = tmp_path / "v.txt"
    path.write_bytes(b"1 2\nbo\xe3\x83 3 4\n")
    result = subprocess.run([sys.executable, "-m", "jaxgram", "neighbors", "bo", "--vectors", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"jaxgram neighbors: error: {path}: the word on line 2 is not valid utf8\n"


def test_save_and_load_keep_every_numeric_vecattr(embeddings, tmp_path):
    saved = Embeddings(WORDS, embeddings.vectors, range(10))
    for row, word in enumerate(WORDS):
        saved.set_vecattr(word, "sample_int", 2**32 - 1 - row)
    saved.save(tmp_path / "v.npz")
    loaded = Embeddings.load(tmp_path / "v.npz")
    assert loaded.get_vecattr("boat", "sample_int") == 2**32 - 3 and loaded.get_vecattr("boat", "count") == 2
    saved.set_vecattr("boat", "note", "a str")  # gensim keeps a str attribute as Python objects
    with pytest.raises(ConfigError, match="vecattr 'note' holds Python objects"):
        saved.save(tmp_path / "other.npz")
    assert not (tmp_path / "other.npz").exists()


@pytest.mark.filterwarnings("ignore:Adding single vectors:UserWarning")
def test_gensims_constructor_form_makes_an_empty_table_to_add_to():
    """KeyedVectors(vector_size, count) as gensim's own code builds one: rows set aside for add_vector."""
    keyed = Embeddings(3, 2)
    assert keyed.add_vector("a", np.ones(3)) == 0 and keyed.add_vector("b", np.array([1.0, -1.0, 0.0])) == 1
    assert keyed.most_similar("a", topn=1) == [("b", 0.0)] and keyed.vectors.dtype == np.float32
    keyed.add_vector("a2", np.full(3, 2.0))
    assert keyed.most_similar("a", topn=1) == [("a2", pytest.approx(1.0))]


def test_text_vectors_are_formatted_a_bounded_block_at_a_time_whatever_the_dim(tmp_path):
    from jaxgram.word2vec_format import FLOATS_PER_WRITE, rows_per_write

    assert rows_per_write(100) == FLOATS_PER_WRITE // 100 and rows_per_write(100_000) == FLOATS_PER_WRITE // 100_000
    assert rows_per_write(4 * FLOATS_PER_WRITE) == 1  # a row wider than a block is still written whole
    words = [f"w{i}" for i in range(7)]
    vectors = np.random.default_rng(0).normal(size=(7, 400_000)).astype(np.float32)  # 2-3 rows a block
    Embeddings(words, vectors).save_word2vec_format(tmp_path / "wide.txt")
    back = Embeddings.load_word2vec_format(tmp_path / "wide.txt")
    assert back.index_to_key == words and np.array_equal(back.vectors, vectors)
