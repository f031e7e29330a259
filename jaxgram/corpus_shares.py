"""Per-process corpus shares: each process of a multi-process run reads, counts and encodes only its
own part of the corpus, and the processes combine their counts into the one vocabulary a single
process would build from the whole corpus.

- A share is a byte range of the corpus file, cut at line (sentence) boundaries: share i of n is the
  lines whose first byte lies in [size * i // n, size * (i + 1) // n), so the shares of n processes
  hold every line exactly once, in order, whatever the lines' lengths (a share may hold none).
- Each process counts its share; `gathered_counts` exchanges the processes' word -> count tables
  (UTF-8 bytes in a uint8 array, through JAX's own allgather) and sums them; vocab._ranked orders
  the sum as build_vocabulary orders the whole corpus's counts (falling count, ties alphabetical).
- A corpus given as token lists (the library's iterable) is shared by sentence: every process holds
  the lists anyway, and each encodes its contiguous part.
- Each process windows only its share and feeds only its devices' columns of each step
  (ProcessColumns); the run's plan is one for all (the steps of the largest share), and `agreed`
  keeps the processes in step call by call: a process whose share is spent feeds padding until every
  share's epoch is. A single process (one device or a mesh) reads and trains the whole corpus as before.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from jaxgram import distributed
from jaxgram.batches import EPOCH_END, BatchPlan, EpochSource, padded
from jaxgram.errors import ConfigError
from jaxgram.resources import release_freed_memory
from jaxgram.vocab import EncodedFile, Vocabulary, count_and_encode_to_npy, read_sentences

# Bytes read at a time while looking for a line's end or counting the lines before a share.
_SCAN_BYTES = 1 << 20


def share_bounds(handle, index: int, count: int) -> tuple[int, int]:
    """[begin, end) in bytes of share `index` of `count` of the open binary file `handle`: the lines
    whose first byte lies in the share's even cut of the file's bytes."""
    size = handle.seek(0, os.SEEK_END)
    return _line_start(handle, size * index // count, size), _line_start(handle, size * (index + 1) // count, size)


def _line_start(handle, position: int, size: int) -> int:
    """The first line start at or after byte `position`: `position` itself when a newline ends the
    byte before it (or it is 0), else just past the next newline (the file's size if none)."""
    if position == 0:
        return 0
    handle.seek(position - 1)
    scanned = position - 1
    while block := handle.read(_SCAN_BYTES):
        newline = block.find(b"\n")
        if newline >= 0:
            return scanned + newline + 1
        scanned += len(block)
    return size


class _Bounded:
    """A reader of `length` bytes of `handle` from where it stands: what vocab._sentences reads a share through."""

    def __init__(self, handle, length: int):
        self._handle, self._left = handle, length

    def read(self, size: int) -> bytes:
        data = self._handle.read(min(size, self._left))
        self._left -= len(data)
        return data


def _lines_before(handle, end: int) -> int:
    """Newlines in the first `end` bytes of `handle`: the lines before a share (only for an error's line number)."""
    handle.seek(0)
    lines = 0
    for start in range(0, end, _SCAN_BYTES):
        lines += handle.read(min(_SCAN_BYTES, end - start)).count(b"\n")
    return lines


def _share_part(handle, index: int, count: int):
    """read_sentences's `part`: (a reader of share `index` of `count`, the lines before it)."""
    begin, end = share_bounds(handle, index, count)
    handle.seek(begin)
    return _Bounded(handle, end - begin), functools.partial(_lines_before, handle, begin)


def read_share(path: str | os.PathLike, index: int, count: int, **options) -> Iterable[list[str]]:
    """The sentences of share `index` of `count` of a LineSentence file, as read_sentences reads them
    (`options`: its max_sentence_length); concatenated over the shares, exactly read_sentences(path)'s."""
    return read_sentences(path, **options, part=functools.partial(_share_part, index=index, count=count))


def merged_counts(tables: Iterable[tuple[list[str], np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """One (words, counts) table from several, the counts of a word in more than one summed."""
    total: collections.Counter[str] = collections.Counter()
    for words, counts in tables:
        for word, count in zip(words, np.asarray(counts).tolist()):  # no table-sized dict beside `total`
            total[word] += count
    return list(total), np.fromiter(total.values(), np.int64, len(total))


def _packed(words: list[str], counts: np.ndarray) -> np.ndarray:
    """A (words, counts) table as bytes: the counts (int64), then the words, each ended by a newline
    (a token never holds whitespace)."""
    text = "".join(word + "\n" for word in words).encode("utf-8")
    return np.concatenate([np.asarray(counts, "<i8").view(np.uint8), np.frombuffer(text, np.uint8)])


def _unpacked(data: np.ndarray, size: int) -> tuple[list[str], np.ndarray]:
    counts = data[:8 * size].view("<i8").astype(np.int64)
    words = data[8 * size:].tobytes().decode("utf-8").split("\n")[:size]
    return words, counts


def gathered_counts(words: list[str], counts: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Every process's (words, counts) table merged: the whole corpus's table, on every process.
    All processes must call it (a collective)."""
    payload = _packed(words, counts)
    sizes = distributed.allgather_ints([len(words), len(payload)])
    if len(sizes) == 1:
        return merged_counts([(words, counts)])
    from jax.experimental import multihost_utils

    # process_allgather needs one shape on every process: each payload is padded to the longest.
    padded = np.pad(payload, (0, int(sizes[:, 1].max()) - len(payload)))
    payloads = np.asarray(multihost_utils.process_allgather(padded))  # [processes, longest]
    words, counts = merged_counts(_unpacked(row[:length], size) for row, (size, length) in zip(payloads, sizes.tolist()))
    # The merged words are strings from every process's table: made again side by side, they free the
    # tables' pages (at V = 400k the words only a second table held kept ~20 MB of its pages in use).
    return "\n".join(words).split("\n") if words else [], counts


def count_and_encode_share(corpus, path: str | os.PathLike, min_count: int, max_vocab_size: int | None,
                           source: str, index: int, count: int, combine=gathered_counts
                           ) -> tuple[Vocabulary, EncodedFile]:
    """This process's share `index` of `count` of `corpus` (a LineSentence path or token lists) counted
    and encoded into `path`, under the vocabulary of the whole corpus (`combine`: the processes' tables
    merged) — the same words, order and counts as vocab.count_and_encode_to_npy over all of it."""
    if isinstance(corpus, (str, os.PathLike)):
        sentences = read_share(corpus, index, count)
    else:
        corpus = corpus if isinstance(corpus, list) else list(corpus)
        sentences = itertools.islice(corpus, len(corpus) * index // count, len(corpus) * (index + 1) // count)
    return count_and_encode_to_npy(sentences, Path(path), min_count, max_vocab_size, source=source, combine=combine)


def count_and_encode(corpus, sentences, source: str, path: str | os.PathLike, config,
                     whole_corpus_kept: bool = False) -> tuple[Vocabulary, EncodedFile]:
    """train()'s vocabulary and encoded corpus in `path`: in one process, vocab.count_and_encode_to_npy
    over the whole corpus (`sentences()` its token lists, as always); with several, this process's
    share only (count_and_encode_share), its EncodedFile counting the whole corpus's raw words (the
    log's and the result's words). `whole_corpus_kept`: the run writes the encoded corpus out, which
    no process of several holds."""
    try:
        return _count_and_encode(corpus, sentences, source, path, config, whole_corpus_kept)
    finally:
        release_freed_memory()  # counting's dictionaries are gone: their pages go back before the tables come


def _count_and_encode(corpus, sentences, source: str, path: str | os.PathLike, config, whole_corpus_kept: bool):
    if jax.process_count() == 1:
        return count_and_encode_to_npy(sentences(), path, config.min_count, config.max_vocab_size, source=source)
    if whole_corpus_kept:
        raise ConfigError("saving the encoded corpus (save=corpus, encoded_text) is not allowed with several "
                          "processes: each encodes only its share of the corpus")
    vocab, encoded = count_and_encode_share(corpus, path, config.min_count, config.max_vocab_size, source,
                                            jax.process_index(), jax.process_count())
    raw_words = int(distributed.allgather_ints([encoded.raw_words]).sum())
    return vocab, dataclasses.replace(encoded, raw_words=raw_words)


@dataclass(frozen=True)
class ProcessColumns:
    """Where this process's share goes in each step of a multi-process run: the columns of the
    step's batch its devices take (the batch is split over device_mesh's devices, in their order)."""

    columns: tuple[tuple[int, int], ...]  # [start, stop) of each of its devices, in column order
    batch: int  # all devices' columns

    @property
    def width(self) -> int:
        return sum(stop - start for start, stop in self.columns)

    def planned(self, centres: int) -> int:
        """The centres to plan the run's epochs for, this share's plan being `centres`: every process
        runs the same steps, enough for the largest share (a collective: all processes call it)."""
        everyone = distributed.allgather_ints([centres, self.width]).tolist()
        return math.ceil(max(share / width for share, width in everyone) * self.batch)

    def widened(self, inputs, foreign_centres: int):
        """A local call's (centers, contexts, mask) [steps, width, ...] as the whole step's host arrays
        [steps, batch, ...], its own columns in place. The others' columns never leave this process
        (each feeds only its devices' shards: distributed.global_array), but the mask's hold the other
        processes' `foreign_centres` ones, so that the training loop counts the step's centres."""
        wide = []
        for local in inputs:
            whole = np.zeros((local.shape[0], self.batch) + local.shape[2:], local.dtype)
            taken = np.cumsum([0] + [stop - start for start, stop in self.columns]).tolist()
            for (start, stop), begin in zip(self.columns, taken):
                whole[:, start:stop] = local[:, begin:begin + stop - start]
            wide.append(whole)
        foreign = np.ones(self.batch, bool)
        for start, stop in self.columns:
            foreign[start:stop] = False
        mask = wide[-1]
        mask[:, foreign] = (np.arange(foreign.sum() * len(mask)) < foreign_centres).reshape(len(mask), -1)
        return tuple(wide)


def process_columns(batch: int) -> ProcessColumns | None:
    """This process's ProcessColumns of a step `batch` centres wide; None in a single process (the whole corpus)."""
    if jax.process_count() == 1:
        return None
    devices = jax.devices()  # device_mesh's order
    width = batch // len(devices)
    return ProcessColumns(tuple((k * width, (k + 1) * width) for k, device in enumerate(devices)
                                if device.process_index == jax.process_index()), batch)


def agreed(calls, source: EpochSource, plan: BatchPlan):
    """`calls` (batches.call_stream's over `source`, prefetched) as every process runs them: the same
    calls on all, a process whose share is spent feeding padding until every share is. Runs on the
    training loop's thread, between its steps, so that the processes' collectives keep one order."""
    if source.share is None:
        return calls
    return _agreed(calls, source.share, dataclasses.replace(plan, batch_size=source.share.width),
                   2 * source.config.window)


_RUN_END = object()  # what _agreed reads after the run's last call (EPOCH_END is None)


def _agreed(calls, columns: ProcessColumns, local: BatchPlan, slots: int):
    try:
        item = next(calls, _RUN_END)
        while item is not _RUN_END:
            spent = item is EPOCH_END
            inputs, pairs = _padding_call(local, slots) if spent else item
            centres = int(np.count_nonzero(inputs[-1]))
            everyone = distributed.allgather_ints([not spent, pairs, centres])
            if not everyone[:, 0].any():  # every share's epoch is spent
                yield EPOCH_END
                item = next(calls, _RUN_END)
                continue
            yield columns.widened(inputs, int(everyone[:, 2].sum()) - centres), int(everyone[:, 1].sum())
            if not spent:
                item = next(calls, _RUN_END)
    finally:
        calls.close()


def _padding_call(plan: BatchPlan, slots: int):
    """(inputs, pairs) of a call that trains nothing (`slots` context slots a centre): a spent share's
    part of the others' steps."""
    return padded(plan, np.zeros(0, np.int32), np.zeros((0, slots), np.int32)), 0
