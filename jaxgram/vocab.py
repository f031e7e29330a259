"""Vocabulary: counting, min_count / max_vocab_size pruning, frequency-sorted ids, encoding.

A corpus file is LineSentence text: one sentence per line, tokens separated by whitespace.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import itertools
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxgram.data import split_sentences
from jaxgram.errors import ConfigError, DataError
from jaxgram.fileio import atomic_open, os_error_reason

log = logging.getLogger(__name__)


class CorpusError(DataError, ValueError):
    """The corpus file is missing, empty or not UTF-8 (a ValueError too, like any other bad input)."""


@dataclass(frozen=True)
class Vocabulary:
    """Words in id order (most frequent first) and their corpus counts."""

    words: tuple[str, ...]
    counts: np.ndarray  # int64 [V]

    def __post_init__(self):
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "counts", np.asarray(self.counts, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.word_to_id

    # Made when first looked up, not with the vocabulary: training never looks a word up, and at
    # V = 400k the dictionary is ~30 MB beside the words' ~28.
    @functools.cached_property
    def word_to_id(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def fingerprint(self) -> str:
        """sha256 of the index file's text: checkpoints refuse to resume on another vocabulary."""
        return self._fingerprint

    def index_text(self) -> str:
        return "".join(self._index_blocks())

    def _index_blocks(self, lines: int = 1 << 14) -> Iterator[str]:
        """The index file's text `lines` lines at a time: hashing or writing it never holds all of it
        (at V = 400k the whole text and its lines took ~30 MB beside the vocabulary)."""
        for start in range(0, len(self.words), lines):
            stop = min(start + lines, len(self.words))
            yield "".join(f"{i}\t{w}\t{c}\n" for i, w, c in zip(range(start, stop), self.words[start:stop],
                                                                    self.counts[start:stop].tolist()))

    # Made once (a vocabulary is immutable): every epoch's checkpoint records the fingerprint, and
    # at V = 1M the text takes most of a second to build.
    @functools.cached_property
    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for block in self._index_blocks():
            digest.update(block.encode("utf-8"))
        return digest.hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        """Write the Embedding Geometry article's vocabulary index: `id word count` per line, tab-separated."""
        with atomic_open(path, "w", encoding="utf-8") as handle:
            handle.writelines(self._index_blocks())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        words, counts = [], []
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read vocabulary {path}: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if len(fields) != 3 or not fields[0].isdigit() or not fields[2].isdigit() or int(fields[0]) != len(words):
                raise DataError(f"{path}: line {number} is not `id word count` with consecutive ids: {line[:80]!r}")
            words.append(fields[1])
            counts.append(int(fields[2]))
        return cls(tuple(words), np.array(counts, dtype=np.int64))


# gensim's LineSentence max_sentence_length: longer lines become several sentences.
MAX_SENTENCE_LENGTH = 10_000
# Lines are read at most this many bytes at a time, so a line without newlines never sits in memory whole.
_BLOCK_BYTES = 1 << 20
_ASCII_SPACES = (b" ", b"\t", b"\r", b"\x0b", b"\x0c")


def read_sentences(path: str | os.PathLike, max_sentence_length: int = MAX_SENTENCE_LENGTH,
                   part=None) -> Iterator[list[str]]:
    """Yield the token lists of a LineSentence file; DataError names the path on any problem.

    A line of more than `max_sentence_length` tokens is split into consecutive sentences of
    that many tokens (the last one shorter), as gensim's LineSentence does; unlike gensim's
    Word2Vec(corpus_iterable=...), which truncates at 10,000, no token is dropped. Lines are
    read in blocks of 1 MiB, so memory stays bounded however long a line is.
    `part(handle)` -> (a reader of some whole lines of the file, a function counting the lines
    before them): read only those lines (jaxgram.corpus_shares); errors still name the file's line.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist or is not a file")
    if max_sentence_length < 1:
        raise ConfigError(f"max_sentence_length={max_sentence_length} is not allowed: it must be >= 1")
    try:
        with open(path, "rb") as handle:
            reader, lines_before = (handle, lambda: 0) if part is None else part(handle)
            try:
                yield from _sentences(reader, max_sentence_length)
            except _Undecodable as exc:  # counted only now: a part's first line number costs a read of all before it
                raise CorpusError(f"corpus file {path}: line {exc.number + lines_before()} is not valid UTF-8 "
                                  f"({exc.reason} at byte {exc.byte})") from None
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc.strerror or exc}") from exc


def _sentences(handle, cap: int) -> Iterator[list[str]]:
    number = 1  # line number of `head`
    head = b""  # the current line's bytes not yet split into tokens
    tokens: list[str] = []  # the current line's tokens not yet yielded (a line longer than a block)
    offset = 0  # bytes of the current line before `head`, for error positions
    while block := handle.read(_BLOCK_BYTES):
        lines = block.split(b"\n")
        rest = lines.pop()  # after the block's last newline: a line that continues
        if lines:
            lines[0] = head + lines[0]
            if tokens:  # the end of a long line whose start is already in `tokens`
                tokens.extend(_decode(lines.pop(0), number, offset).split())
                yield from _chunks(tokens, cap)
                tokens, number, offset = [], number + 1, 0
            for index, raw in enumerate(lines):
                try:
                    line = raw.decode("utf-8").split()
                except UnicodeDecodeError:  # raises, naming the line
                    line = _decode(raw, number + index, 0 if index else offset).split()
                if len(line) > cap:
                    yield from _chunks(line, cap)
                elif line:
                    yield line
            number, offset = number + len(lines), 0
            head = rest
        else:
            head += rest
        if len(head) > _BLOCK_BYTES:
            # A long line: split off all but its last token, which may continue in the next block.
            # The cut is after an ASCII space, which UTF-8 never has inside a character.
            cut = max(head.rfind(space) for space in _ASCII_SPACES) + 1
            tokens.extend(_decode(head[:cut], number, offset).split())
            head, offset = head[cut:], offset + cut
            full = len(tokens) - len(tokens) % cap
            yield from _chunks(tokens[:full], cap)
            del tokens[:full]
    if head or tokens:  # a last line without a newline
        tokens.extend(_decode(head, number, offset).split())
        yield from _chunks(tokens, cap)


def _chunks(tokens: list[str], cap: int) -> Iterator[list[str]]:
    return (tokens[k:k + cap] for k in range(0, len(tokens), cap))


class _Undecodable(ValueError):
    """Line `number` (of the lines read) is not UTF-8: `reason` at `byte` of the line; read_sentences names the file."""

    def __init__(self, number: int, reason: str, byte: int):
        super().__init__(number, reason, byte)
        self.number, self.reason, self.byte = number, reason, byte


def _decode(data: bytes, number: int, offset: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Undecodable(number, exc.reason, offset + exc.start) from None


def build_vocabulary(sentences: Iterable[list[str]], min_count: int = 5, max_vocab_size: int | None = None,
                     source: str = "the corpus") -> Vocabulary:
    """Count words, drop those below min_count, keep the max_vocab_size most frequent.

    Ties are broken alphabetically so ids do not depend on corpus order. Unlike gensim,
    max_vocab_size prunes once after counting (exact) rather than during counting.
    """
    # One Counter over all tokens: the counting loop runs in C, not once per sentence in Python.
    counter = collections.Counter(itertools.chain.from_iterable(sentences))
    words = list(counter)
    counts = np.fromiter(counter.values(), np.int64, len(words))
    _log_collected(len(words), int(counts.sum()))
    order = _ranked(words, counts, min_count, max_vocab_size, source)
    return Vocabulary(tuple(words[i] for i in order.tolist()), counts[order])


def _ranked(words: list[str], counts: np.ndarray, min_count: int, max_vocab_size: int | None, source: str) -> np.ndarray:
    """Indices into `words` (distinct, any order) of the vocabulary in id order: counts of at least
    min_count, most frequent first, ties alphabetical, at most max_vocab_size of them."""
    if not words:
        raise CorpusError(f"{source} is empty: it has no tokens")
    alphabetical = np.array(sorted(np.flatnonzero(counts >= min_count).tolist(), key=words.__getitem__), np.int64)
    # A stable sort by falling count keeps the alphabetical order within each count.
    order = alphabetical[np.argsort(-counts[alphabetical], kind="stable")][:max_vocab_size]
    if len(order) < 2:
        raise ConfigError(
            f"min_count={min_count} leaves {len(order)} word(s) of {len(words)} in the vocabulary; "
            "at least 2 are needed: lower min_count or use a larger corpus"
        )
    _log_retained(counts, order, min_count, max_vocab_size)
    return order


def _log_collected(word_types: int, raw_words: int, sentences: int | None = None) -> None:
    """gensim's line after counting the corpus (the sentences when they were counted)."""
    if sentences is None:
        log.info("collected %i word types from a corpus of %i raw words", word_types, raw_words)
    else:
        log.info("collected %i word types from a corpus of %i raw words and %i sentences", word_types, raw_words,
                 sentences)


def _log_retained(counts: np.ndarray, order: np.ndarray, min_count: int, max_vocab_size: int | None) -> None:
    """gensim's two lines on what min_count (and max_vocab_size) keep: distinct words, then tokens."""
    rule = f"min_count={min_count}" + (f" max_vocab_size={max_vocab_size}" if max_vocab_size is not None else "")
    kept_words, all_words = len(order), len(counts)
    kept_tokens, all_tokens = int(counts[order].sum()), int(counts.sum())
    log.info("%s retains %i unique words (%.2f%% of original %i, drops %i)", rule, kept_words,
             100.0 * kept_words / all_words, all_words, all_words - kept_words)
    log.info("%s leaves %i word corpus (%.2f%% of original %i, drops %i)", rule, kept_tokens,
             100.0 * kept_tokens / all_tokens, all_tokens, all_tokens - kept_tokens)


@dataclass(frozen=True)
class EncodedCorpus:
    """Token ids of in-vocabulary words, flattened, with the sentence each one belongs to.

    Out-of-vocabulary words are dropped before windowing, as word2vec and gensim do.
    """

    ids: np.ndarray  # int32 [N]
    sentence_ids: np.ndarray  # int32 [N]
    raw_words: int  # tokens in the file, including out-of-vocabulary ones

    def sentences(self) -> list[np.ndarray]:
        cuts = np.flatnonzero(np.diff(self.sentence_ids)) + 1
        return np.split(self.ids, cuts)


# Tokens encoded at a time: only one block's token strings (about 60 bytes each) are held at
# once, never a whole 10-million-token corpus's; per block, a few NumPy calls are all the overhead.
_ENCODE_BLOCK = 1 << 18


def encode(sentences: Iterable[list[str]], vocab: Vocabulary) -> EncodedCorpus:
    blocks: list[np.ndarray] = [np.zeros(0, np.int32)]
    lengths: list[np.ndarray] = [np.zeros(0, np.int64)]
    raw = 0
    for ids, kept_lengths, words in _encoded_groups(sentences, _lookup(vocab), _ENCODE_BLOCK):
        blocks.append(ids)
        lengths.append(kept_lengths)
        raw += words
    per_sentence = np.concatenate(lengths)
    sentence_ids = np.repeat(np.arange(len(per_sentence), dtype=np.int32), per_sentence)
    return EncodedCorpus(np.concatenate(blocks), sentence_ids, raw)


def _lookup(vocab: Vocabulary) -> Callable[[Iterable[str]], Iterator[int]]:
    """Tokens -> their ids, -1 for a word not in `vocab`: one `map` over all of them, in C."""
    index = vocab.word_to_id
    return lambda tokens: map(index.get, tokens, itertools.repeat(-1))


def _encoded_groups(sentences: Iterable[list[str]], lookup: Callable[[Iterable[str]], Iterator[int]],
                    block: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Encode consecutive sentences about `block` tokens at a time; see _encode_group for what each gives."""
    group: list[list[str]] = []
    size = 0
    for tokens in sentences:
        group.append(tokens)
        size += len(tokens)
        if size >= block:
            yield _encode_group(group, lookup, size)
            group, size = [], 0
    if group:
        yield _encode_group(group, lookup, size)


def _encode_group(group: list[list[str]], lookup: Callable[[Iterable[str]], Iterator[int]],
                  size: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(in-vocabulary ids, int32; how many each sentence that has any holds, int64; tokens in the group).

    Every token is looked up by one `map` over the whole group (-1 when out of vocabulary),
    so no Python code runs per token.
    """
    ids = np.fromiter(lookup(itertools.chain.from_iterable(group)), np.int32, size)
    known = ids >= 0
    sentence_of_token = np.repeat(np.arange(len(group)), np.fromiter(map(len, group), np.int64, len(group)))
    kept_per_sentence = np.bincount(sentence_of_token[known], minlength=len(group))
    return ids[known], kept_per_sentence[kept_per_sentence > 0], size


@dataclass(frozen=True)
class EncodedFile:
    """An encoded corpus on disk in corpus.npy's layout (int32 ids, -1 between sentences), read memory-mapped.

    Training reads it a chunk at a time (jaxgram.data.corpus_chunks), so host memory is
    bounded by the chunk, not by the corpus.
    """

    path: Path
    length: int  # entries: ids and separators
    raw_words: int  # tokens in the source, including out-of-vocabulary ones
    offset: int  # bytes of .npy header before the first entry

    def __len__(self) -> int:
        return self.length

    def read(self, start: int, stop: int) -> np.ndarray:
        """Entries [start, stop) as an in-memory copy.

        Only that window of the file is mapped, and only for the copy, so neither address
        space nor resident memory grows with the corpus.
        """
        start, stop = max(0, start), min(stop, self.length)
        if stop <= start:
            return np.zeros(0, np.int32)
        return np.array(np.memmap(self.path, np.int32, "r", offset=self.offset + 4 * start, shape=(stop - start,)))

    def sentences(self, block: int = 1 << 22) -> Iterator[np.ndarray]:
        """Each sentence's ids, reading `block` entries at a time."""
        tail = np.zeros(0, np.int32)
        for start in range(0, len(self), block):
            piece = np.concatenate([tail, self.read(start, start + block)])
            ends = np.flatnonzero(piece < 0)  # each separator ends the sentence before it
            begins = np.concatenate([[0], ends + 1])
            for begin, end in zip(begins.tolist(), ends.tolist()):
                yield piece[begin:end]
            tail = piece[begins[-1]:]
        if len(tail):
            yield tail


# Tokens encoded in memory before their ids are written out to the file (as _ENCODE_BLOCK).
_ENCODE_BUFFER = 1 << 18


def encode_to_npy(sentences: Iterable[list[str]], vocab: Vocabulary, path: str | os.PathLike) -> EncodedFile:
    """Encode `sentences` straight into an int32 .npy at `path` (corpus.npy's layout), a buffer at a time.

    The vocabulary fixes the number of in-vocabulary tokens N, and at most N - 1 separators
    fit between them, so the file is created (sparse) for 2N - 1 entries and cut to its
    length at the end. No list of all ids is ever in memory: each buffer is written at its
    place in the file and dropped, so memory does not grow with the corpus. On any failure
    the file is removed; a full disk is a DataError naming it.
    """
    path = Path(path)
    capacity = 2 * int(vocab.counts.sum()) - 1
    with _whole_or_removed(path), open(path, "w+b") as handle:
        header_bytes = handle.write(_npy_header(capacity))
        handle.truncate(header_bytes + 4 * capacity)
        written = raw = 0
        for ids, kept_lengths, words in _encoded_groups(sentences, _lookup(vocab), _ENCODE_BUFFER):
            raw += words
            if len(ids) == 0:
                continue
            entries = _with_separators_before(ids, kept_lengths, first=written == 0)
            if written + len(entries) > capacity:
                raise CorpusError(f"{path}: the corpus has more in-vocabulary tokens than when its vocabulary was "
                                  "counted (did the corpus change meanwhile?)")
            _write_at(handle, header_bytes + 4 * written, entries)
            written += len(entries)
        _truncate_npy(handle, written, header_bytes)
    return EncodedFile(path, written, raw, header_bytes)


@contextlib.contextmanager
def _whole_or_removed(path: Path) -> Iterator[None]:
    """Remove the encoded corpus at `path` if the block fails, so that no half-written file is left to be
    read as a whole one; an OSError (a full disk above all) becomes one DataError naming the file."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DataError(f"could not write the encoded corpus {path}: {os_error_reason(exc)}") from exc
        raise


def _with_separators_before(ids: np.ndarray, lengths: np.ndarray, first: bool) -> np.ndarray:
    """`ids` (sentences of `lengths`) with -1 before each sentence but the file's first."""
    starts = np.cumsum(lengths) - lengths
    return np.insert(ids, starts[1:] if first else starts, np.int32(-1))


def count_and_encode_to_npy(sentences: Iterable[list[str]], path: str | os.PathLike, min_count: int = 5,
                            max_vocab_size: int | None = None, source: str = "the corpus",
                            combine=None) -> tuple[Vocabulary, EncodedFile]:
    """build_vocabulary, then encode_to_npy, in one pass over `sentences`: the same vocabulary and file bytes.

    Each token is split and looked up once, not once per pass. The pass writes every token's
    provisional id (its word's rank by first appearance) to `path`; once the vocabulary is
    known, the file is rewritten in place a buffer at a time, out-of-vocabulary tokens and
    emptied sentences dropped. Memory holds one buffer and the distinct words, as in the two passes.
    `combine(words, counts)` -> the (words, counts) of the whole corpus when `sentences` are one
    share of it (jaxgram.corpus_shares): the vocabulary is ranked from those, only the share encoded.
    """
    path = Path(path)
    first_seen: collections.defaultdict[str, int] = collections.defaultdict(itertools.count().__next__)
    with _whole_or_removed(path), open(path, "w+b") as handle:
        header_bytes = handle.write(_npy_header(0))
        local_counts, length, raw = _write_provisional(sentences, first_seen, handle)
        local_words = list(first_seen)
        first_seen.clear()  # the words live on in local_words; the dict's table goes before the merge
        words, counts = (local_words, local_counts) if combine is None else combine(local_words, local_counts)
        # One separator per sentence; a share's sentences are not the corpus's, so they go unsaid.
        _log_collected(len(words), int(counts.sum()), sentences=length - raw if combine is None else None)
        order = _ranked(words, counts, min_count, max_vocab_size, source)
        vocab = Vocabulary(tuple(words[i] for i in order.tolist()), counts[order])
        # Each provisional id's final one; -2: out of vocabulary (looked up without keeping the vocabulary's dict).
        final_id = {word: i for i, word in enumerate(vocab.words)}.get
        final_ids = np.fromiter(map(final_id, local_words, itertools.repeat(-2)), np.int32, len(local_words))
        del final_id
        written = _rewrite_provisional(handle, header_bytes, length, final_ids)
        _truncate_npy(handle, written, header_bytes)
    return vocab, EncodedFile(path, written, raw, header_bytes)


def _write_provisional(sentences: Iterable[list[str]], first_seen, handle) -> tuple[np.ndarray, int, int]:
    """Append each sentence's provisional ids and a -1 to `handle`; (counts per provisional id, entries, tokens)."""
    counts = np.zeros(0, np.int64)
    length = raw = 0
    # `first_seen[word]` gives a new word the next id: the lookup and the numbering run in C.
    for ids, lengths, words in _encoded_groups(sentences, lambda tokens: map(first_seen.__getitem__, tokens),
                                               _ENCODE_BUFFER):
        group_counts = np.bincount(ids, minlength=len(first_seen))
        counts = np.concatenate([counts, np.zeros(len(group_counts) - len(counts), np.int64)]) + group_counts
        entries = np.insert(ids, np.cumsum(lengths), np.int32(-1))
        handle.write(entries.tobytes())
        length, raw = length + len(entries), raw + words
    return counts, length, raw


def _rewrite_provisional(handle, header_bytes: int, length: int, final_ids: np.ndarray) -> int:
    """Turn the `length` provisional entries in `handle` into corpus.npy's entries, in place; returns how many.

    Each window is read whole before its output, never longer, is written at or before its
    start, so nothing is overwritten before it is read.
    """
    written, after_separator = 0, True
    for start in range(0, length, _ENCODE_BUFFER):
        handle.seek(header_bytes + 4 * start)
        window = np.frombuffer(handle.read(4 * min(_ENCODE_BUFFER, length - start)), np.int32)
        output, after_separator = _final_entries(window, final_ids, after_separator, first=written == 0)
        _write_at(handle, header_bytes + 4 * written, output)
        written += len(output)
    return written


def _final_entries(provisional: np.ndarray, final_ids: np.ndarray, after_separator: bool,
                   first: bool) -> tuple[np.ndarray, bool]:
    """corpus.npy's entries for a window of provisional ones, and whether the window ends after a separator.

    `after_separator`: whether the entries before the window end with a separator (True at the
    file's start); `first`: whether nothing has been written yet.
    """
    entries = np.where(provisional >= 0, final_ids[np.maximum(provisional, 0)], np.int32(-1))
    entries = entries[entries != -2]  # out-of-vocabulary tokens go; their sentences' separators stay
    if len(entries) == 0:
        return entries, after_separator
    is_id = entries >= 0
    # An id right after a separator opens a sentence: one -1 goes before it, however many
    # emptied sentences were between, except before the file's very first id.
    opens = (is_id & np.concatenate([[after_separator], entries[:-1] < 0]))[is_id]
    if first and len(opens):
        opens[0] = False
    return np.insert(entries[is_id], np.flatnonzero(opens), np.int32(-1)), bool(entries[-1] < 0)


def _write_at(handle, offset: int, entries: np.ndarray) -> None:
    """Write int32 `entries` into `handle` at byte `offset`.

    A plain write, not a memory map: on a full disk (or a sparse file's hole that cannot be
    filled) a write through a map kills the process with SIGBUS, a write raises an OSError.
    """
    handle.seek(offset)
    handle.write(entries.tobytes())


def _npy_header(length: int) -> bytes:
    """The .npy header of a 1-D int32 array of `length` entries."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i4", "fortran_order": False, "shape": (length,)})
    return header.getvalue()


def _truncate_npy(handle, length: int, header_bytes: int) -> None:
    """Cut the 1-D int32 .npy in `handle` to its first `length` entries: a new header of the same size, a shorter file."""
    header = _npy_header(length)
    # numpy pads headers to 64-byte multiples; a 1-D shape's digits never change the size in practice.
    if len(header) != header_bytes:
        raise AssertionError(f"npy header size changed from {header_bytes} to {len(header)} bytes")
    handle.seek(0)
    handle.write(header)
    handle.truncate(header_bytes + 4 * length)


def save_encoded_npy(path: str | os.PathLike, corpus: EncodedCorpus | EncodedFile) -> None:
    """The encoded corpus as one int32 array with -1 between sentences (an EncodedFile is copied as it is)."""
    with atomic_open(path, "wb") as handle:
        if isinstance(corpus, EncodedFile):
            with open(corpus.path, "rb") as source:
                shutil.copyfileobj(source, handle, _BLOCK_BYTES)
        else:
            np.save(handle, _with_separators(corpus), allow_pickle=False)


def load_encoded_npy(path: str | os.PathLike) -> EncodedCorpus:
    try:
        flat = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read encoded corpus {path}: {exc}") from exc
    if flat.dtype != np.int32 or flat.ndim != 1:
        raise DataError(f"encoded corpus {path} must be a 1-D int32 array, got {flat.dtype} {flat.shape}")
    ids, sentence_ids = split_sentences(flat)
    # Sentence ids count from 0 even if the file opens with a separator.
    return EncodedCorpus(ids, sentence_ids - (sentence_ids[0] if len(ids) else 0), len(ids))


def save_encoded_text(path: str | os.PathLike, corpus: EncodedCorpus | EncodedFile) -> None:
    """The Embedding Geometry article's corpus_encoded.txt: a sentence per line, ids separated by spaces."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for sentence in corpus.sentences():
            handle.write(" ".join(map(str, sentence.tolist())) + "\n")


def _with_separators(corpus: EncodedCorpus) -> np.ndarray:
    pieces = []
    for sentence in corpus.sentences():
        pieces.append(sentence)
        pieces.append(np.array([-1], dtype=np.int32))
    return np.concatenate(pieces[:-1]) if pieces else np.zeros(0, np.int32)
