"""Training data: frequent-word subsampling, the noise distribution, skip-gram pairs.

Pair generation is vectorised in NumPy over a chunk of the corpus (one pass per window
offset), so an epoch of a 1M-word corpus takes well under a second on the host. A corpus
larger than memory stays in a memory-mapped corpus.npy (-1 between sentences) and is cut
into chunks at sentence boundaries (corpus_chunks), one chunk's groups in memory at a time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec's subsampling: keep a word with probability (sqrt(f / t) + 1) * t / f, capped at 1.

    f is the word's count and t = sample * (total count); sample = 0 keeps everything.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_distribution(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """Unigram counts raised to `exponent`, normalised (word2vec's negative-sampling noise)."""
    weights = np.asarray(counts, dtype=np.float64) ** exponent
    return weights / weights.sum()


def noise_table(probabilities: np.ndarray, log2_size: int | None = None) -> np.ndarray:
    """word2vec's unigram table: int32 ids, word i filling about p_i * size slots.

    Sampling is then one random integer and one gather, about twice as fast on CPU as a
    binary search over the CDF. The default size (>= 2^20 and >= 64 slots per word on
    average) keeps every word with p_i >= 1 / size within one slot of its share. Slot j holds
    the word whose CDF interval holds the slot's centre (j + 0.5) / size: word i's slots end
    where the centres pass cdf_i, so the table is each id repeated over its run of slots (one
    pass at memory speed; searching the CDF for 2^24 centres took ~1 s at V = 173k).
    """
    starts = noise_slot_starts(probabilities, log2_size)
    runs = np.diff(starts.astype(np.int64), append=1 << noise_log2_size(len(starts), log2_size))
    return np.repeat(np.arange(len(starts), dtype=np.int32), runs)


def noise_log2_size(vocab_size: int, log2_size: int | None = None) -> int:
    """log2 of noise_table's size: `log2_size`, or by default >= 2^20 and >= 64 slots a word."""
    return max(20, int(np.ceil(np.log2(vocab_size))) + 6) if log2_size is None else log2_size


def noise_slot_starts(probabilities: np.ndarray, log2_size: int | None = None) -> np.ndarray:
    """uint32 [V]: the first slot of each word's run in noise_table (the next word's start
    where a word has none). The table in V entries instead of 64·V: slot j holds the last
    word whose start is <= j."""
    size = 1 << noise_log2_size(len(probabilities), log2_size)
    if size > 1 << 32:
        raise ValueError(f"the noise table's size must be at most 2^32 slots, got 2^{size.bit_length() - 1}")
    cdf = np.cumsum(np.asarray(probabilities, dtype=np.float64))
    # Slots whose centre lies below cdf_i: j + 0.5 < cdf_i / cdf_V * size.
    ends = np.clip(np.ceil(cdf / cdf[-1] * size - 0.5), 0, size).astype(np.int64)
    # The last word ends at the table's end: every slot belongs to some word, the last one's centre included.
    return np.concatenate([[0], ends[:-1]]).astype(np.uint32)


def count_pairs(length: int, window: int) -> int:
    """The Embedding Geometry article's pair count for one sentence of `length` tokens: sum_i min(w, i) + min(w, T-1-i)."""
    if length <= 0:
        return 0
    if length <= window:
        return length * (length - 1)
    return 2 * window * length - window * (window + 1)


def sentence_pairs(tokens, window: int) -> list[tuple]:
    """All (center, context) pairs of one sentence, centre by centre, contexts left to right."""
    pairs = []
    for i, center in enumerate(tokens):
        for j in range(max(0, i - window), min(len(tokens), i + window + 1)):
            if j != i:
                pairs.append((center, tokens[j]))
    return pairs


def subsample(ids: np.ndarray, sentence_ids: np.ndarray, keep_prob: np.ndarray, rng: np.random.Generator):
    """Drop frequent-word tokens at random, before windowing (so windows reach further, as in word2vec)."""
    keep = rng.random(len(ids)) < keep_prob[ids]
    return ids[keep], sentence_ids[keep]


def _reach(n: int, window: int, shrink: bool, rng: np.random.Generator | None) -> np.ndarray:
    """Each of n centres' window: drawn uniformly from 1..window when windows shrink (word2vec)."""
    return rng.integers(1, window + 1, size=n, dtype=np.int32) if shrink else np.full(n, window, dtype=np.int32)


def _offsets(window: int) -> list[int]:
    """A centre's context positions relative to it, left to right: -window..-1, 1..window."""
    return [*range(-window, 0), *range(1, window + 1)]


def _context_grid(ids: np.ndarray, sentence_ids: np.ndarray, window: int, shrink: bool,
                  rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """(valid [n, 2w] bool, offsets [2w]): valid[i, k] says token i + offsets[k] is a context of centre i."""
    n = len(ids)
    reach = _reach(n, window, shrink, rng)
    offsets = np.asarray(_offsets(window))
    # Filled one offset (column) at a time with 1-D slices, so memory stays at n * 2w booleans.
    valid = np.zeros((n, 2 * window), dtype=bool)
    for column, offset in enumerate(offsets.tolist()):
        distance = abs(offset)
        if distance >= n:
            continue
        same_sentence = sentence_ids[distance:] == sentence_ids[:-distance]
        if offset > 0:
            valid[:-distance, column] = same_sentence & (reach[:-distance] >= distance)
        else:
            valid[distance:, column] = same_sentence & (reach[distance:] >= distance)
    return valid, offsets


def window_pairs(ids: np.ndarray, sentence_ids: np.ndarray, window: int, shrink: bool,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(centers, contexts) for every token, centre-major with contexts left to right.

    With `shrink`, each centre draws its own effective window uniformly from 1..window,
    as word2vec and gensim do. Pairs never cross a sentence boundary.
    """
    valid, offsets = _context_grid(ids, sentence_ids, window, shrink, rng)
    # Flat indices (one int64 array) rather than np.nonzero's rows and columns (two).
    flat = np.flatnonzero(valid)
    del valid
    rows = (flat // len(offsets)).astype(np.int32)
    positions = rows + offsets.astype(np.int32)[flat % len(offsets)]
    del flat
    return ids[rows], ids[positions]


def epoch_groups(ids: np.ndarray, sentence_ids: np.ndarray, keep_prob: np.ndarray, window: int, shrink: bool,
                 rng: np.random.Generator, streams: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One epoch of centre groups, (centers [n], contexts [n, 2w]) with -1 in empty slots, built as the
    trainer builds them (training_groups)."""
    groups = training_groups(ids, sentence_ids, keep_prob, window, shrink, rng, streams)
    return groups.block(0, len(groups))


@dataclass(frozen=True)
class CentreGroups:
    """An epoch's centre groups of one chunk, in training order, with their contexts built a block
    at a time: the host holds a few int32 per token instead of 2·window of them."""

    ids: np.ndarray  # the kept (subsampled) tokens, int32
    sentence_ids: np.ndarray  # their sentences
    reach: np.ndarray  # each token's window (drawn from 1..window when windows shrink)
    rows: np.ndarray  # the centres' positions in `ids`, in training order; tokens without a context left out
    window: int

    def __len__(self) -> int:
        return len(self.rows)

    def block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(centers [b], contexts [b, 2w]) of centres start..stop; empty slots hold -1."""
        from jaxgram import fused  # its C++ pass when the kernel library is built: a dozen NumPy passes in one

        rows = self.rows[start:stop]
        contexts = fused.context_block(self.ids, self.sentence_ids, self.reach, rows, self.window)
        return self.ids[rows], self.numpy_contexts(rows) if contexts is None else contexts

    def numpy_contexts(self, rows: np.ndarray) -> np.ndarray:
        """The contexts of the centres at `rows`, in NumPy: one pass per window offset."""
        last = len(self.ids) - 1
        offsets = _offsets(self.window)
        contexts = np.empty((len(rows), len(offsets)), dtype=np.int32)
        for column, offset in enumerate(offsets):
            positions = rows + offset
            inside = np.clip(positions, 0, last)
            valid = ((positions == inside) & (self.sentence_ids[inside] == self.sentence_ids[rows])
                     & (self.reach[rows] >= abs(offset)))
            contexts[:, column] = np.where(valid, self.ids[inside], -1)
        return contexts


def training_groups(ids: np.ndarray, sentence_ids: np.ndarray, keep_prob: np.ndarray, window: int, shrink: bool,
                    rng: np.random.Generator, streams: int) -> CentreGroups:
    """One epoch's centre groups of a chunk in training order: subsample, draw each centre's window,
    then the centres in corpus order, cut into `streams` contiguous shares taken in turn.

    That is the order word2vec.c and gensim (corpus_file) train in: each of their `workers`
    threads walks its own contiguous share of the corpus. Training on the centres shuffled
    instead gave a model that agreed measurably less with gensim's than gensim's seeds agree
    with each other (neighbour overlap@10 0.372 against 0.417, README "Agreement with gensim").
    """
    kept_ids, kept_sentences = subsample(ids, sentence_ids, keep_prob, rng)
    groups = _centre_groups(kept_ids, kept_sentences, window, shrink, rng)
    return dataclasses.replace(groups, rows=groups.rows[interleaved_shares(len(groups), streams)])


def interleaved_shares(count: int, streams: int) -> np.ndarray:
    """Positions 0..count-1 cut into `streams` contiguous shares, then taken one from each share in
    turn: streams=2, count=5 -> [0, 2, 1, 3, 4]."""
    bounds = np.arange(streams + 1) * count // streams
    share = np.repeat(np.arange(streams), np.diff(bounds))
    within = np.arange(count) - bounds[share]
    return np.lexsort((share, within))


def _centre_groups(ids: np.ndarray, sentence_ids: np.ndarray, window: int, shrink: bool,
                   rng: np.random.Generator | None) -> CentreGroups:
    """Every token with a context, in corpus order, its window drawn as for window_pairs (so the
    groups hold exactly its pairs)."""
    n = len(ids)
    reach = _reach(n, window, shrink, rng)
    # Every window reaches at least 1, so a token has a context exactly when a neighbour is in its sentence.
    same_as_next = sentence_ids[1:] == sentence_ids[:-1]
    has_context = np.zeros(n, dtype=bool)
    has_context[:-1] |= same_as_next
    has_context[1:] |= same_as_next
    rows = np.flatnonzero(has_context).astype(np.int32)
    return CentreGroups(ids.astype(np.int32, copy=False), sentence_ids.astype(np.int32, copy=False), reach, rows,
                        window)


def corpus_chunks(read, length: int, max_entries: int) -> list[tuple[int, int]]:
    """(start, stop) pieces of a corpus.npy array (-1 between sentences) of at most `max_entries` entries.

    `read(start, stop)` returns entries of the array (of `length` entries); one piece is read
    at a time. Each piece ends just after a separator, so no sentence is split, unless one
    sentence alone is longer than a piece.
    """
    bounds, start = [], 0
    while start < length:
        stop = min(start + max_entries, length)
        if stop < length:
            separators = np.flatnonzero(read(start, stop) < 0)
            if len(separators):
                stop = start + int(separators[-1]) + 1
        bounds.append((start, stop))
        start = stop
    return bounds


def split_sentences(piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, sentence_ids) of a piece of corpus.npy: the separators become sentence-id changes."""
    piece = np.asarray(piece)
    boundary = piece < 0
    return piece[~boundary], np.cumsum(boundary, dtype=np.int32)[~boundary]
