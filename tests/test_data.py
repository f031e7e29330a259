import collections

import numpy as np
import pytest

from jaxgram.data import (
    _centre_groups,
    corpus_chunks,
    count_pairs,
    epoch_groups,
    keep_probabilities,
    noise_distribution,
    noise_log2_size,
    noise_slot_starts,
    noise_table,
    sentence_pairs,
    split_sentences,
    subsample,
    window_pairs,
)


def test_seed_sentence_gives_exactly_its_ten_pairs():
    pairs = sentence_pairs("the car moves fast".split(), 2)
    assert pairs == [("the", "car"), ("the", "moves"), ("car", "the"), ("car", "moves"), ("car", "fast"),
                     ("moves", "the"), ("moves", "car"), ("moves", "fast"), ("fast", "car"), ("fast", "moves")]
    assert count_pairs(4, 2) == 10


@pytest.mark.parametrize("length", range(0, 12))
@pytest.mark.parametrize("window", [1, 2, 3, 5])
def test_count_pairs_matches_enumeration(length, window):
    assert count_pairs(length, window) == len(sentence_pairs(list(range(length)), window))


def _two_sentences():
    ids = np.array([0, 1, 2, 3, 4, 5, 6], np.int32)
    sentence_ids = np.array([0, 0, 0, 0, 1, 1, 1], np.int32)
    return ids, sentence_ids


def test_vectorised_pairs_equal_reference_and_never_cross_sentences():
    ids, sentence_ids = _two_sentences()
    centers, contexts = window_pairs(ids, sentence_ids, 2, shrink=False)
    expected = sentence_pairs([0, 1, 2, 3], 2) + sentence_pairs([4, 5, 6], 2)
    assert list(zip(centers.tolist(), contexts.tolist())) == expected
    assert centers.dtype == np.int32 and contexts.dtype == np.int32


def test_shrinking_window_draws_reach_uniformly():
    rng = np.random.default_rng(0)
    n, window = 20000, 4
    ids = np.arange(n, dtype=np.int32)
    centers, contexts = window_pairs(ids, np.zeros(n, np.int32), window, shrink=True, rng=rng)
    distance = np.abs(contexts - centers)
    assert distance.min() == 1 and distance.max() == window
    # With reach r ~ U{1..w}, offset d is used with probability (w - d + 1) / w on each side.
    for d in range(1, window + 1):
        expected = 2 * n * (window - d + 1) / window
        assert abs(np.sum(distance == d) - expected) < 0.03 * expected


def test_keep_probability_is_word2vecs_formula():
    counts = np.array([1000, 100, 10, 1], np.int64)
    sample = 1e-3
    t = sample * counts.sum()
    expected = np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)
    np.testing.assert_allclose(keep_probabilities(counts, sample), expected)
    assert keep_probabilities(counts, sample)[0] < 1 and keep_probabilities(counts, sample)[-1] == 1
    np.testing.assert_array_equal(keep_probabilities(counts, 0.0), 1.0)


def test_subsampling_keeps_the_expected_fraction():
    keep_prob = np.array([0.2, 1.0])
    ids = np.array([0, 1] * 50000, np.int32)
    kept, kept_sentences = subsample(ids, np.zeros_like(ids), keep_prob, np.random.default_rng(1))
    frequencies = collections.Counter(kept.tolist())
    assert frequencies[1] == 50000
    assert abs(frequencies[0] / 50000 - 0.2) < 0.01
    assert len(kept_sentences) == len(kept)


def test_noise_distribution_is_unigram_to_the_exponent():
    counts = np.array([81, 16, 1])
    noise = noise_distribution(counts, 0.75)
    np.testing.assert_allclose(noise, np.array([27, 8, 1]) / 36)
    np.testing.assert_allclose(noise_distribution(counts, 1.0), counts / counts.sum())
    np.testing.assert_allclose(noise_distribution(counts, 0.0), 1 / 3)


def test_noise_table_follows_the_noise_distribution():
    counts = np.array([5000, 900, 120, 30, 7, 5])
    noise = noise_distribution(counts, 0.75)
    table = noise_table(noise, log2_size=16)
    assert table.dtype == np.int32 and len(table) == 1 << 16
    shares = np.bincount(table, minlength=len(counts)) / len(table)
    np.testing.assert_allclose(shares, noise, atol=2 / len(table))
    assert len(noise_table(np.full(100, 0.01))) == 1 << 20


def test_each_noise_slot_holds_the_word_whose_share_holds_its_centre():
    rng = np.random.default_rng(3)
    noise = noise_distribution(rng.zipf(1.3, 3000).astype(np.float64), 0.75)
    table = noise_table(noise, log2_size=18)
    centres = (np.arange(1 << 18) + 0.5) / (1 << 18)
    expected = np.minimum(np.searchsorted(np.cumsum(noise), centres, side="right"), len(noise) - 1)
    assert np.count_nonzero(table != expected) <= 2  # rounding at a boundary may move a slot to its neighbour
    assert np.all(np.abs(table - expected) <= 1) and np.all(np.diff(table) >= 0)


def test_noise_slot_starts_are_where_each_words_run_begins_in_the_table():
    # Words with no slot (a zero share, or one smaller than half a slot) included, at both ends too.
    noise = noise_distribution(np.array([0, 5000, 1, 900, 0, 120, 30, 7, 5, 0], np.float64), 0.75)
    table = noise_table(noise, log2_size=12)
    starts = noise_slot_starts(noise, log2_size=12)
    assert starts.dtype == np.uint32 and len(starts) == len(noise)
    # The table's slot j holds the last word whose run starts at or before j.
    np.testing.assert_array_equal(np.searchsorted(starts, np.arange(1 << 12), side="right") - 1, table)
    assert noise_log2_size(100) == 20 and noise_log2_size(400_000) == 25 and noise_log2_size(5, 12) == 12


def window_groups(ids, sentence_ids, window: int, shrink: bool, rng=None):
    """(centers, contexts) of every centre group, in corpus order, windows drawn as window_pairs draws them."""
    groups = _centre_groups(ids, sentence_ids, window, shrink, rng)
    return groups.block(0, len(groups))


@pytest.mark.parametrize("shrink", [False, True])
def test_window_groups_hold_exactly_the_window_pairs(shrink):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 50, 300).astype(np.int32)
    sentence_ids = np.sort(rng.integers(0, 40, 300)).astype(np.int32)  # sentences of 0 to ~20 words
    centers, contexts = window_pairs(ids, sentence_ids, 3, shrink, np.random.default_rng(9))
    group_centers, group_contexts = window_groups(ids, sentence_ids, 3, shrink, np.random.default_rng(9))
    assert group_contexts.shape == (len(group_centers), 6) and group_contexts.dtype == np.int32
    assert (group_contexts >= 0).any(axis=1).all()  # centres without a context are left out
    flattened = [(c, t) for c, row in zip(group_centers.tolist(), group_contexts.tolist()) for t in row if t >= 0]
    assert flattened == list(zip(centers.tolist(), contexts.tolist()))


def test_epoch_groups_hold_whole_centres():
    ids, sentence_ids = _two_sentences()
    centers, contexts = epoch_groups(ids, sentence_ids, np.ones(7), 2, False, np.random.default_rng(5))
    pairs = sorted((c, t) for c, row in zip(centers.tolist(), contexts.tolist()) for t in row if t >= 0)
    assert pairs == sorted(sentence_pairs([0, 1, 2, 3], 2) + sentence_pairs([4, 5, 6], 2))
    assert sorted(centers.tolist()) == list(range(7))


def _flat(sentences):
    """corpus.npy's layout: the sentences' ids with -1 between sentences."""
    pieces = [np.array(s, np.int32) for s in sentences]
    separated = [x for piece in pieces for x in (piece, np.array([-1], np.int32))][:-1]
    return np.concatenate(separated)


@pytest.mark.parametrize("max_entries", [3, 4, 7, 100])
def test_corpus_chunks_cut_only_between_sentences(max_entries):
    sentences = [[0, 1, 2], [3], [4, 5], [6, 7, 8], [9]]
    flat = _flat(sentences)
    reads = []

    def read(start, stop):
        reads.append(stop - start)
        return flat[start:stop]

    bounds = corpus_chunks(read, len(flat), max_entries)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(flat)
    assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:]))
    assert all(stop - start <= max_entries for start, stop in bounds) and max(reads, default=0) <= max_entries
    chunks = [split_sentences(flat[start:stop]) for start, stop in bounds]
    rebuilt = []
    for ids, sentence_ids in chunks:
        rebuilt += [ids[sentence_ids == s].tolist() for s in np.unique(sentence_ids)]
    assert rebuilt == sentences  # every sentence whole, in one chunk, in order


def test_a_sentence_longer_than_a_chunk_is_split():
    flat = _flat([[1, 2, 3, 4, 5, 6], [7]])
    assert corpus_chunks(lambda a, b: flat[a:b], len(flat), 4) == [(0, 4), (4, 8)]
    assert corpus_chunks(lambda a, b: flat[a:b], len(flat), 3) == [(0, 3), (3, 6), (6, 8)]


def test_split_sentences_gives_what_window_groups_need():
    ids, sentence_ids = split_sentences(_flat([[5, 6], [7, 8, 9]]))
    assert ids.tolist() == [5, 6, 7, 8, 9] and ids.dtype == np.int32
    assert sentence_ids.tolist() == [0, 0, 1, 1, 1] and sentence_ids.dtype == np.int32
    reference = window_groups(*_two_sentences(), 2, False)
    again = window_groups(*split_sentences(_flat([[0, 1, 2, 3], [4, 5, 6]])), 2, False)
    np.testing.assert_array_equal(again[0], reference[0])
    np.testing.assert_array_equal(again[1], reference[1])


@pytest.mark.parametrize("shrink", [True, False])
def test_the_compiled_context_pass_equals_the_numpy_one(shrink):
    from jaxgram import fused
    from jaxgram.data import training_groups

    if not fused.available():
        pytest.fail(f"the kernel library is not built: {fused.unavailable_reason()}")
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 50, 5000).astype(np.int32)
    sentence_ids = np.cumsum(rng.random(5000) < 0.1).astype(np.int32)
    # Three shares taken in turn: the rows jump back and forth through the tokens, as in training.
    groups = training_groups(ids, sentence_ids, np.full(50, 0.8), 4, shrink, np.random.default_rng(2), streams=3)
    compiled = groups.block(0, len(groups))[1]
    np.testing.assert_array_equal(compiled, groups.numpy_contexts(groups.rows))
    assert (compiled >= 0).any() and (compiled == -1).any()  # both kinds of slot occur


@pytest.mark.parametrize("count, streams", [(5, 2), (7, 3), (10, 1), (2, 4), (0, 2)])
def test_interleaved_shares_take_contiguous_shares_in_turn(count, streams):
    from jaxgram.data import interleaved_shares

    order = interleaved_shares(count, streams).tolist()
    assert sorted(order) == list(range(count))
    bounds = [k * count // streams for k in range(streams + 1)]
    shares = [list(range(bounds[k], bounds[k + 1])) for k in range(streams)]
    # Each share keeps its corpus order, and the k-th round holds the k-th item of every share.
    assert all([p for p in order if lo <= p < hi] == list(range(lo, hi)) for lo, hi in zip(bounds, bounds[1:]))
    rounds = [share[i] for i in range(max(map(len, shares), default=0)) for share in shares if i < len(share)]
    assert order == rounds


def test_training_groups_are_the_epochs_pairs_in_corpus_order_per_share():
    from jaxgram.data import training_groups

    ids, sentence_ids = _two_sentences()
    groups = training_groups(ids, sentence_ids, np.ones(7), 2, False, np.random.default_rng(5), streams=2)
    centers, contexts = groups.block(0, len(groups))
    pairs = sorted((c, t) for c, row in zip(centers.tolist(), contexts.tolist()) for t in row if t >= 0)
    assert pairs == sorted(sentence_pairs([0, 1, 2, 3], 2) + sentence_pairs([4, 5, 6], 2))
    assert groups.rows.tolist() == [0, 3, 1, 4, 2, 5, 6]  # shares 0-2 and 3-6, taken in turn
