import bz2
import gzip
import subprocess
import sys

import numpy as np
import pytest
from gensim.models import KeyedVectors

from jaxgram import Embeddings, Params, UnknownWordError, Vocabulary
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
    "topn 0": (lambda e: e.most_similar("car", topn=0), "topn=0 is not allowed: use an integer >= 1"),
    "topn negative": (lambda e: e.most_similar_cosmul("car", topn=-2), "topn=-2 is not allowed"),
    "topn fraction": (lambda e: e.similar_by_vector(e["car"], topn=1.5), "topn=1.5 is not allowed"),
    "restrict 0": (lambda e: e.most_similar("car", restrict_vocab=0), "restrict_vocab=0 is not allowed: use an integer >= 1"),
    "restrict negative": (lambda e: e.most_similar_cosmul("car", restrict_vocab=-5), "restrict_vocab=-5 is not allowed"),
    "restrict in evaluation": (lambda e: e.evaluate_word_pairs("pairs.tsv", restrict_vocab=0), "restrict_vocab=0"),
    "vector shape": (lambda e: e.similar_by_vector(np.ones(3)), r"a word or a vector of shape \(8,\)"),
    "no words": (lambda e: e.n_similarity([], ["car"]), "at least one word in each list"),
    "no positive": (lambda e: e.most_similar_cosmul(negative=["car"]), "at least one positive word"),
    "attribute": (lambda e: e.get_vecattr("car", "frequency"), "attr='frequency' is not stored: .* 'count'"),
    "no counts": (lambda e: e.get_vecattr("car", "count"), "no word counts are loaded: pass fvocab="),
    "similarity function": (lambda e: e.evaluate_word_analogies("questions.txt", similarity_function="cosine"),
                            "similarity_function='cosine' is not allowed: choose most_similar or most_similar_cosmul"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_are_one_line_config_errors_naming_what_is_allowed(embeddings, name):
    call, message = BAD_CALLS[name]
    with pytest.raises(ConfigError, match=message) as info:
        call(embeddings)
    assert "\n" not in str(info.value)


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
