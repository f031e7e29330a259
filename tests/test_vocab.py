import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxgram.errors import ConfigError, DataError
from jaxgram.vocab import (
    CorpusError,
    Vocabulary,
    build_vocabulary,
    count_and_encode_to_npy,
    encode,
    encode_to_npy,
    load_encoded_npy,
    read_sentences,
    save_encoded_npy,
    save_encoded_text,
)

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
    latin.write_bytes("caf\xe9 ok\n".encode() + "na\xefve\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt: line 2 is not valid UTF-8"):
        list(read_sentences(latin))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(CorpusError, match="empty"):
        build_vocabulary(read_sentences(empty))


def _reference_sentences(data: bytes, cap: int) -> list[list[str]]:
    """What read_sentences promises: each line's whitespace-split tokens, cut into sentences of `cap`."""
    tokens_per_line = [line.decode("utf-8").split() for line in data.split(b"\n")]
    return [tokens[k:k + cap] for tokens in tokens_per_line for k in range(0, len(tokens), cap)]


@pytest.mark.parametrize("block_bytes", [1, 5, 64, 1 << 20])
def test_long_lines_become_sentences_of_max_length_and_no_token_is_lost(tmp_path, monkeypatch, block_bytes):
    """Lines longer than a block or than max_sentence_length, in blocks as small as one byte,
    give exactly the tokens of each line in order, cut into sentences of max_sentence_length."""
    import jaxgram.vocab

    monkeypatch.setattr(jaxgram.vocab, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(block_bytes)
    words = ["a", "bb", "café", "naïve", "x" * 30, "\u3000y"]  # \u3000 is whitespace that is not ASCII
    separators = [" ", "  ", "\t", " \r", "\x0c", "\n", "\n\n"]
    pieces = []
    for _ in range(400):
        pieces.append(words[rng.integers(len(words))])
        pieces.append(separators[rng.integers(len(separators))] if rng.random() < 0.2 else " ")
    data = "".join(pieces).encode("utf-8") + b"tail"  # the last line has no newline
    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    for cap in (1, 7, 10_000):
        assert list(read_sentences(path, max_sentence_length=cap)) == _reference_sentences(data, cap), cap


def test_a_line_of_one_more_than_max_tokens_gives_two_sentences(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(" ".join(f"t{i}" for i in range(10_001)) + "\nshort line\n")
    lengths = [len(tokens) for tokens in read_sentences(path)]
    assert lengths == [10_000, 1, 2]


def test_bad_utf8_inside_a_long_line_names_its_line_and_byte(tmp_path, monkeypatch):
    import jaxgram.vocab

    monkeypatch.setattr(jaxgram.vocab, "_BLOCK_BYTES", 16)
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"ok line\n" + b"word " * 20 + b"caf\xe9 " + b"word " * 20 + b"\n")
    with pytest.raises(CorpusError, match=r"corpus.txt: line 2 is not valid UTF-8 .* at byte 103\)"):
        list(read_sentences(path))
    with pytest.raises(ConfigError, match="max_sentence_length=0"):
        list(read_sentences(path, max_sentence_length=0))


def test_encoding_in_blocks_gives_the_same_ids(corpus, monkeypatch):
    import jaxgram.vocab

    vocab = build_vocabulary(read_sentences(corpus), min_count=1)
    whole = encode(read_sentences(corpus), vocab)
    monkeypatch.setattr(jaxgram.vocab, "_ENCODE_BLOCK", 3)
    blocked = encode(read_sentences(corpus), vocab)
    assert blocked.ids.dtype == np.int32 and blocked.ids.tolist() == whole.ids.tolist()
    assert blocked.sentence_ids.tolist() == whole.sentence_ids.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 2


@pytest.mark.parametrize("buffer", [2, 1 << 20])
def test_encoding_to_a_memory_mapped_file_gives_corpus_npy(corpus, tmp_path, monkeypatch, buffer):
    import jaxgram.vocab
    from jaxgram.vocab import encode_to_npy

    monkeypatch.setattr(jaxgram.vocab, "_ENCODE_BUFFER", buffer)
    vocab = build_vocabulary(read_sentences(corpus), min_count=2)  # out-of-vocabulary words are dropped
    in_memory = encode(read_sentences(corpus), vocab)
    encoded = encode_to_npy(read_sentences(corpus), vocab, tmp_path / "encoded.npy")
    save_encoded_npy(tmp_path / "reference.npy", in_memory)
    assert (tmp_path / "encoded.npy").read_bytes() == (tmp_path / "reference.npy").read_bytes()
    assert encoded.raw_words == in_memory.raw_words == 14 and len(encoded) == len(in_memory.ids) + 4 - 1
    assert [s.tolist() for s in encoded.sentences(block=3)] == [s.tolist() for s in in_memory.sentences()]
    assert encoded.read(1, 4).tolist() == np.load(tmp_path / "reference.npy")[1:4].tolist()
    save_encoded_npy(tmp_path / "copy.npy", encoded)
    save_encoded_text(tmp_path / "copy.txt", encoded)
    save_encoded_text(tmp_path / "reference.txt", in_memory)
    assert (tmp_path / "copy.npy").read_bytes() == (tmp_path / "reference.npy").read_bytes()
    assert (tmp_path / "copy.txt").read_text() == (tmp_path / "reference.txt").read_text()


def _reference_vocabulary(sentences, min_count, max_vocab_size):
    """The vocabulary as a plain loop defines it: counts >= min_count, most frequent first, ties alphabetical."""
    counts = {}
    for tokens in sentences:
        for token in tokens:
            counts[token] = counts.get(token, 0) + 1
    kept = sorted((-count, word) for word, count in counts.items() if count >= min_count)[:max_vocab_size]
    return tuple(word for _, word in kept), [-count for count, _ in kept]


def _reference_npy(sentences, vocab) -> np.ndarray:
    """corpus.npy as a plain loop defines it: each sentence's in-vocabulary ids, -1 between non-empty ones."""
    entries = []
    for tokens in sentences:
        ids = [vocab.word_to_id[t] for t in tokens if t in vocab]
        if ids:
            entries += ([-1] if entries else []) + ids
    return np.array(entries, dtype=np.int32)


# Corpora with repeated words (ties), sentences that lose every word to min_count, and empty sentences.
SENTENCES = st.lists(st.lists(st.sampled_from(["a", "b", "bb", "c", "café", "d", "e\x00", "Z", "zz"]), max_size=12),
                     min_size=1, max_size=30)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sentences=SENTENCES, min_count=st.integers(1, 4), max_vocab_size=st.one_of(st.none(), st.integers(0, 6)),
       buffer=st.sampled_from([1, 2, 5, 1 << 18]))
def test_vectorised_counting_and_encoding_match_a_plain_loop(monkeypatch, sentences, min_count, max_vocab_size,
                                                             buffer):
    """build_vocabulary, encode, encode_to_npy and count_and_encode_to_npy give what a per-token loop gives
    (same ids, same errors), at any buffer size; the one-pass function writes the two passes' exact bytes."""
    import jaxgram.vocab

    monkeypatch.setattr(jaxgram.vocab, "_ENCODE_BUFFER", buffer)
    monkeypatch.setattr(jaxgram.vocab, "_ENCODE_BLOCK", buffer)
    with tempfile.TemporaryDirectory() as folder:  # one per example: tmp_path is one per test
        _check_against_plain_loop(Path(folder), sentences, min_count, max_vocab_size)


def _check_against_plain_loop(tmp_path, sentences, min_count, max_vocab_size):
    words, counts = _reference_vocabulary(sentences, min_count, max_vocab_size)
    if not any(sentences) or len(words) < 2:
        error = CorpusError if not any(sentences) else ConfigError
        with pytest.raises(error):
            build_vocabulary(sentences, min_count, max_vocab_size)
        with pytest.raises(error):
            count_and_encode_to_npy(sentences, tmp_path / "one.npy", min_count, max_vocab_size)
        assert not (tmp_path / "one.npy").exists()
        return
    vocab = build_vocabulary(sentences, min_count, max_vocab_size)
    assert vocab.words == words and vocab.counts.tolist() == counts and vocab.counts.dtype == np.int64
    expected = _reference_npy(sentences, vocab)
    two_passes = encode_to_npy(iter(sentences), vocab, tmp_path / "two.npy")
    one_vocab, one_pass = count_and_encode_to_npy(iter(sentences), tmp_path / "one.npy", min_count, max_vocab_size)
    assert one_vocab.words == words and one_vocab.counts.tolist() == counts
    assert np.load(tmp_path / "two.npy").tolist() == expected.tolist()
    assert (tmp_path / "one.npy").read_bytes() == (tmp_path / "two.npy").read_bytes()
    raw = sum(map(len, sentences))
    assert (one_pass.length, one_pass.raw_words, one_pass.offset) == (two_passes.length, raw, two_passes.offset)
    in_memory = encode(sentences, vocab)
    assert in_memory.raw_words == raw and in_memory.ids.dtype == in_memory.sentence_ids.dtype == np.int32
    assert [s.tolist() for s in in_memory.sentences()] == [s.tolist() for s in one_pass.sentences()]


def test_one_pass_on_a_file_matches_two_passes_and_names_the_source(corpus, tmp_path):
    vocab, encoded = count_and_encode_to_npy(read_sentences(corpus), tmp_path / "one.npy", min_count=2)
    assert vocab.words == ("the", "car", "fast", "moves") and encoded.raw_words == 14
    encode_to_npy(read_sentences(corpus), build_vocabulary(read_sentences(corpus), min_count=2), tmp_path / "two.npy")
    assert (tmp_path / "one.npy").read_bytes() == (tmp_path / "two.npy").read_bytes()
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \t\n")
    with pytest.raises(CorpusError, match=f"corpus file {empty} is empty"):
        count_and_encode_to_npy(read_sentences(empty), tmp_path / "none.npy", source=f"corpus file {empty}")
    with pytest.raises(ConfigError, match="min_count=4 leaves 0 word"):
        count_and_encode_to_npy(read_sentences(corpus), tmp_path / "none.npy", min_count=4)
    assert not (tmp_path / "none.npy").exists()


def test_encoding_a_corpus_that_grew_since_counting_is_refused(corpus, tmp_path):
    vocab = build_vocabulary(read_sentences(corpus), min_count=2)
    grown = list(read_sentences(corpus)) * 2
    with pytest.raises(CorpusError, match="more in-vocabulary tokens than when its vocabulary was counted"):
        encode_to_npy(grown, vocab, tmp_path / "encoded.npy")
    assert not (tmp_path / "encoded.npy").exists()  # a file cut short is never left to be read


def _interrupted(sentences, after: int):
    """The sentences, until Ctrl-C after `after` of them."""
    yield from sentences[:after]
    raise KeyboardInterrupt


def test_an_interrupted_encoding_leaves_no_encoded_file(corpus, tmp_path):
    """Both encoders remove their file when the encoding stops half-way, so no later reader takes a prefix
    (or, for encode_to_npy, a file sized for the whole corpus with a zero-filled tail) for the corpus."""
    sentences = list(read_sentences(corpus))
    vocab = build_vocabulary(sentences, min_count=1)
    with pytest.raises(KeyboardInterrupt):
        count_and_encode_to_npy(_interrupted(sentences, 2), tmp_path / "one.npy", min_count=1)
    with pytest.raises(KeyboardInterrupt):
        encode_to_npy(_interrupted(sentences, 2), vocab, tmp_path / "two.npy")
    assert list(tmp_path.glob("*.npy")) == []
