import numpy as np
import pytest

from jaxgram.errors import ConfigError, DataError
from jaxgram.vocab import (CorpusError, Vocabulary, build_vocabulary, encode, load_encoded_npy, read_sentences,
                           save_encoded_npy, save_encoded_text)

TEXT = "the car moves fast\nthe plane moves fast\n\nthe elephant eats grass\na car\n"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_vocabulary_is_frequency_sorted_with_counts(corpus):
    vocab = build_vocabulary(read_sentences(corpus), min_count=1)
    assert vocab.words[:4] == ("the", "car", "fast", "moves")  # 3, then 2s alphabetically
    assert vocab.counts.tolist()[:4] == [3, 2, 2, 2]
    assert len(vocab) == 9 and sum(vocab.counts) == 14


def test_min_count_and_max_vocab_size(corpus):
    assert build_vocabulary(read_sentences(corpus), min_count=2).words == ("the", "car", "fast", "moves")
    assert build_vocabulary(read_sentences(corpus), min_count=1, max_vocab_size=2).words == ("the", "car")
    with pytest.raises(ConfigError, match="min_count=4 leaves 0 word"):
        build_vocabulary(read_sentences(corpus), min_count=4)


def test_index_file_round_trip(corpus, tmp_path):
    vocab = build_vocabulary(read_sentences(corpus), min_count=1)
    vocab.save(tmp_path / "vocab.tsv")
    first_line = (tmp_path / "vocab.tsv").read_text().splitlines()[0]
    assert first_line.split() == ["0", "the", "3"]
    loaded = Vocabulary.load(tmp_path / "vocab.tsv")
    assert loaded.words == vocab.words and loaded.counts.tolist() == vocab.counts.tolist()
    assert loaded.fingerprint() == vocab.fingerprint()
    (tmp_path / "bad.tsv").write_text("0\tthe\t3\n2\tcar\t1\n")
    with pytest.raises(DataError, match="line 2"):
        Vocabulary.load(tmp_path / "bad.tsv")


def test_encoding_drops_unknown_words_keeps_sentences(corpus, tmp_path):
    vocab = build_vocabulary(read_sentences(corpus), min_count=2)
    encoded = encode(read_sentences(corpus), vocab)
    assert encoded.ids.dtype == np.int32 and encoded.raw_words == 14
    assert [s.tolist() for s in encoded.sentences()] == [[0, 1, 3, 2], [0, 3, 2], [0], [1]]
    save_encoded_npy(tmp_path / "corpus.npy", encoded)
    loaded = load_encoded_npy(tmp_path / "corpus.npy")
    assert [s.tolist() for s in loaded.sentences()] == [s.tolist() for s in encoded.sentences()]
    save_encoded_text(tmp_path / "corpus_encoded.txt", encoded)
    assert (tmp_path / "corpus_encoded.txt").read_text().splitlines() == ["0 1 3 2", "0 3 2", "0", "1"]


def test_bad_corpus_files_raise_value_errors_naming_the_path(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(CorpusError, match="missing.txt"):
        list(read_sentences(missing))
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ok\n".encode("utf-8") + "na\xefve\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt: line 2 is not valid UTF-8"):
        list(read_sentences(latin))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(CorpusError, match="empty"):
        build_vocabulary(read_sentences(empty))
