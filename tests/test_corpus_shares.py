"""Per-process corpus shares: byte ranges cut at line boundaries hold every line once, and the
shares' counts, combined, give the vocabulary one process builds from the whole corpus."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_distributed import _free_port

from jaxgram.corpus_shares import ProcessColumns, count_and_encode_share, merged_counts, read_share, share_bounds
from jaxgram.vocab import CorpusError, EncodedFile, build_vocabulary, count_and_encode_to_npy, read_sentences

# Lines longer than a share of 4 or more, an empty line, a blank one, two-, three- and four-byte
# UTF-8 words (a cut falls inside some of them), ties between counts, and no newline at the end.
TEXT = ("the car moves fast\n\nthe plane moves fast through the long night over the sea and under the "
        "sky and the clouds and the stars above the sea and the land the plane moves\n   \n"
        "naïve café 日本語 🙂 the car\na\nb b b\nthe elephant eats grass naïve naïve\n日本語 🙂 🙂 a car")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    return path


def _table(sentences) -> tuple[list[str], np.ndarray]:
    counter = collections.Counter(word for sentence in sentences for word in sentence)
    return list(counter), np.array(list(counter.values()), np.int64)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, len(TEXT.encode("utf-8"))])
def test_the_shares_hold_every_line_once_in_order(corpus, count):
    shares = [list(read_share(corpus, index, count)) for index in range(count)]
    assert [sentence for share in shares for sentence in share] == list(read_sentences(corpus))
    if count >= 4:
        assert [] in shares  # a share inside a line longer than it holds no line


def test_a_share_starts_at_the_first_line_that_begins_in_it(corpus):
    with open(corpus, "rb") as handle:
        data = handle.read()
        bounds = [share_bounds(handle, index, 4) for index in range(4)]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(data)
    for (_, end), (begin, _) in zip(bounds, bounds[1:]):
        assert end == begin and (begin == len(data) or data[begin - 1:begin] == b"\n")
    # The cut at 1/4 of the file lies inside line 3: share 0 runs to that line's end.
    cut = len(data) // 4
    assert data.rfind(b"\n", 0, cut) < cut <= data.find(b"\n", cut) + 1 == bounds[0][1]


words = st.sampled_from(["a", "b", "the", "naïve", "日本語", "🙂", "x" * 40])
lines = st.lists(st.lists(words, max_size=12).map(" ".join), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=lines, count=st.integers(1, 9), final_newline=st.booleans())
def test_any_corpus_cut_into_any_shares_reads_as_the_whole(tmp_path, lines, count, final_newline):
    path = tmp_path / "any.txt"
    path.write_bytes(("\n".join(lines) + ("\n" if final_newline else "")).encode("utf-8"))
    shares = [read_share(path, index, count, max_sentence_length=5) for index in range(count)]
    assert [s for share in shares for s in share] == list(read_sentences(path, max_sentence_length=5))


@pytest.mark.parametrize("count", [1, 2, 3, 4])
@pytest.mark.parametrize("min_count, max_vocab_size", [(1, None), (2, None), (1, 5)])
def test_shares_counted_apart_and_combined_give_the_whole_corpus_vocabulary(corpus, tmp_path, count, min_count,
                                                                           max_vocab_size):
    whole, whole_file = count_and_encode_to_npy(read_sentences(corpus), tmp_path / "whole.npy", min_count,
                                                max_vocab_size)
    tables = [_table(read_share(corpus, index, count)) for index in range(count)]
    encoded_shares = []
    seen = []

    def combine(words, counts):
        seen.append((words, counts.tolist()))
        return merged_counts(tables)

    for index in range(count):
        vocab, encoded = count_and_encode_share(corpus, tmp_path / f"{index}.npy", min_count, max_vocab_size,
                                                "the corpus", index, count, combine=combine)
        assert seen.pop() == (tables[index][0], tables[index][1].tolist())  # each share counts its own lines only
        assert vocab.words == whole.words and vocab.counts.tolist() == whole.counts.tolist()
        assert vocab.fingerprint() == whole_file_vocab_fingerprint(corpus, min_count, max_vocab_size)
        encoded_shares.append(encoded)
    # Each share encodes its own lines under the whole vocabulary: together, the whole corpus's ids.
    shared = [s.tolist() for encoded in encoded_shares for s in encoded.sentences()]
    assert shared == [s.tolist() for s in whole_file.sentences()]
    assert sum(encoded.raw_words for encoded in encoded_shares) == whole_file.raw_words


def whole_file_vocab_fingerprint(corpus, min_count, max_vocab_size) -> str:
    return build_vocabulary(read_sentences(corpus), min_count, max_vocab_size).fingerprint()


def test_token_lists_are_shared_by_sentence(tmp_path):
    sentences = [["a", "b"], ["b", "c", "c"], ["d"], ["a", "c"], ["c", "b"]]
    whole = build_vocabulary(sentences, min_count=1)
    tables = [_table(sentences[:2]), _table(sentences[2:])]
    first, encoded = count_and_encode_share(sentences, tmp_path / "0.npy", 1, None, "the corpus", 0, 2,
                                            combine=lambda words, counts: merged_counts(tables))
    assert first.words == whole.words and first.counts.tolist() == whole.counts.tolist()
    assert encoded.raw_words == 5 and len(list(encoded.sentences())) == 2


def test_an_undecodable_line_in_a_share_is_named_by_its_line_in_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"a b\n" * 40 + b"ok \xff no\n" + b"c d\n" * 10)
    with pytest.raises(CorpusError, match=r"^corpus file .*bad.txt: line 41 is not valid UTF-8 \(invalid start byte "
                                          r"at byte 3\)$"):
        list(read_share(path, 1, 2))
    clean = list(read_share(path, 0, 2))  # the other share, lines 1-26, reads clean
    assert clean == [["a", "b"]] * 26


def test_an_empty_corpus_cut_into_shares_is_refused_as_empty(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n \n")
    with pytest.raises(CorpusError, match="corpus file .* is empty: it has no tokens"):
        count_and_encode_share(path, tmp_path / "0.npy", 1, None, f"corpus file {path}", 0, 2,
                               combine=lambda words, counts: merged_counts([]))


# Process argv[2] of two: joins the run at argv[1], counts and encodes its share of argv[3] and saves
# its vocabulary (argv[4]/vocab-I.tsv) and its sentences' ids (argv[4]/share-I.json).
SHARE_IN_PROCESS = """
    import json, sys
    from jaxgram import distributed
    rank = int(sys.argv[2])
    distributed.initialize(distributed.Cluster(sys.argv[1], 2, rank))
    import jax
    from jaxgram.corpus_shares import count_and_encode_share
    vocab, encoded = count_and_encode_share(sys.argv[3], f"{sys.argv[4]}/{rank}.npy", 2, None, "the corpus",
                                            jax.process_index(), jax.process_count())
    vocab.save(f"{sys.argv[4]}/vocab-{rank}.tsv")
    with open(f"{sys.argv[4]}/share-{rank}.json", "w") as handle:
        json.dump([s.tolist() for s in encoded.sentences()], handle)
"""


def test_two_processes_each_count_their_share_and_end_with_the_one_process_vocabulary(tmp_path):
    """Over loopback: the words of the first half of the file are not those of the second (and
    multi-byte ones among them), yet both processes end with the whole file's vocabulary."""
    path = tmp_path / "corpus.txt"
    first_half = ["alpha beta gamma naïve", "beta gamma 日本語 日本語", "alpha alpha"] * 20
    second_half = (["delta zeta theta omega!", "zeta theta 🙂🙂x 🙂🙂x", "delta delta"] * 18
                   + ["delta zeta rare omega!!", "zeta theta 🙂🙂x 🙂🙂x", "delta once!"]
                   + ["delta zeta rare omega!!", "zeta theta 🙂🙂x 🙂🙂x", "delta delta"])
    first, second = ("".join(line + "\n" for line in half).encode("utf-8") for half in (first_half, second_half))
    assert len(first) == len(second)  # the cut between the two shares falls between the halves
    path.write_bytes(first + second)
    coordinator = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu"}
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(SHARE_IN_PROCESS), coordinator, str(rank),
                                  str(path), str(tmp_path)], env=env, stderr=subprocess.PIPE, text=True)
                for rank in (0, 1)]
    try:
        errors = [child.communicate(timeout=60)[1] for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0, 0], [err[-2000:] for err in errors]
    whole, whole_file = count_and_encode_to_npy(read_sentences(path), tmp_path / "whole.npy", 2)
    assert "rare" in whole.words and "once!" not in whole.words
    shares = [json.loads((tmp_path / f"share-{rank}.json").read_text()) for rank in (0, 1)]
    for rank in (0, 1):
        assert (tmp_path / f"vocab-{rank}.tsv").read_text(encoding="utf-8") == whole.index_text()
        assert shares[rank]  # each process encoded a part
    assert shares[0] + shares[1] == [s.tolist() for s in whole_file.sentences()]
    assert not set(np.concatenate(shares[0]).tolist()) & set(np.concatenate(shares[1]).tolist())


def test_encoded_file_of_a_share_is_a_corpus_npy(corpus, tmp_path):
    tables = [_table(read_share(corpus, index, 2)) for index in range(2)]
    _, encoded = count_and_encode_share(corpus, tmp_path / "1.npy", 1, None, "the corpus", 1, 2,
                                        combine=lambda words, counts: merged_counts(tables))
    assert isinstance(encoded, EncodedFile)
    flat = np.load(tmp_path / "1.npy")
    assert flat.dtype == np.int32 and len(flat) == len(encoded) and flat[0] >= 0 and flat[-1] >= 0


def test_a_share_fills_only_its_own_devices_columns_of_each_step():
    """Process 1 of two, one device each: its call [steps, 4] goes to columns 4..8 of the step's 8;
    the mask's other columns hold the other process's centres as ones, only to be counted."""
    columns = ProcessColumns(((4, 8),), 8)
    centers = np.arange(1, 9, dtype=np.int32).reshape(2, 4)
    contexts = np.arange(16, dtype=np.int32).reshape(2, 4, 2)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.float32)
    wide_centers, wide_contexts, wide_mask = columns.widened((centers, contexts, mask), foreign_centres=5)
    assert wide_centers.shape == (2, 8) and wide_contexts.shape == (2, 8, 2) and wide_mask.shape == (2, 8)
    np.testing.assert_array_equal(wide_centers[:, 4:], centers)
    np.testing.assert_array_equal(wide_contexts[:, 4:], contexts)
    np.testing.assert_array_equal(wide_mask[:, 4:], mask)
    assert not wide_centers[:, :4].any() and not wide_contexts[:, :4].any()
    assert np.count_nonzero(wide_mask) == 6 + 5 and columns.width == 4
