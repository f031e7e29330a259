"""Vocabulary: counting, min_count / max_vocab_size pruning, frequency-sorted ids, encoding.

A corpus file is LineSentence text: one sentence per line, tokens separated by whitespace.
"""

from __future__ import annotations

import collections
import io
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxgram.data import split_sentences
from jaxgram.errors import ConfigError, DataError
from jaxgram.fileio import atomic_open, atomic_write_text, sha256_bytes


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
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    @property
    def word_to_id(self) -> dict[str, int]:
        return self._index

    def fingerprint(self) -> str:
        """sha256 of the index file's text: checkpoints refuse to resume on another vocabulary."""
        return sha256_bytes(self.index_text().encode("utf-8"))

    def index_text(self) -> str:
        return "".join(f"{i}\t{w}\t{c}\n" for i, (w, c) in enumerate(zip(self.words, self.counts.tolist())))

    def save(self, path: str | os.PathLike) -> None:
        """Write the Embedding Geometry article's vocabulary index: `id word count` per line, tab-separated."""
        atomic_write_text(path, self.index_text())

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


def read_sentences(path: str | os.PathLike, max_sentence_length: int = MAX_SENTENCE_LENGTH) -> Iterator[list[str]]:
    """Yield the token lists of a LineSentence file; DataError names the path on any problem.

    A line of more than `max_sentence_length` tokens is split into consecutive sentences of
    that many tokens (the last one shorter), as gensim's LineSentence does; unlike gensim's
    Word2Vec(corpus_iterable=...), which truncates at 10,000, no token is dropped. Lines are
    read in blocks of 1 MiB, so memory stays bounded however long a line is.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist or is not a file")
    if max_sentence_length < 1:
        raise ConfigError(f"max_sentence_length={max_sentence_length} is not allowed: it must be >= 1")
    try:
        with open(path, "rb") as handle:
            yield from _sentences(path, handle, max_sentence_length)
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc.strerror or exc}") from exc


def _sentences(path: Path, handle, cap: int) -> Iterator[list[str]]:
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
                tokens.extend(_decode(path, lines.pop(0), number, offset).split())
                yield from _chunks(tokens, cap)
                tokens, number, offset = [], number + 1, 0
            for index, raw in enumerate(lines):
                try:
                    line = raw.decode("utf-8").split()
                except UnicodeDecodeError:  # raises, naming the line
                    line = _decode(path, raw, number + index, 0 if index else offset).split()
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
            tokens.extend(_decode(path, head[:cut], number, offset).split())
            head, offset = head[cut:], offset + cut
            full = len(tokens) - len(tokens) % cap
            yield from _chunks(tokens[:full], cap)
            del tokens[:full]
    if head or tokens:  # a last line without a newline
        tokens.extend(_decode(path, head, number, offset).split())
        yield from _chunks(tokens, cap)


def _chunks(tokens: list[str], cap: int) -> Iterator[list[str]]:
    return (tokens[k:k + cap] for k in range(0, len(tokens), cap))


def _decode(path: Path, data: bytes, number: int, offset: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"corpus file {path}: line {number} is not valid UTF-8 "
                          f"({exc.reason} at byte {offset + exc.start})") from None


def build_vocabulary(sentences: Iterable[list[str]], min_count: int = 5, max_vocab_size: int | None = None,
                     source: str = "the corpus") -> Vocabulary:
    """Count words, drop those below min_count, keep the max_vocab_size most frequent.

    Ties are broken alphabetically so ids do not depend on corpus order. Unlike gensim,
    max_vocab_size prunes once after counting (exact) rather than during counting.
    """
    counter: collections.Counter[str] = collections.Counter()
    for tokens in sentences:
        counter.update(tokens)
    if not counter:
        raise CorpusError(f"{source} is empty: it has no tokens")
    kept = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
    if max_vocab_size is not None:
        kept = kept[:max_vocab_size]
    if len(kept) < 2:
        raise ConfigError(
            f"min_count={min_count} leaves {len(kept)} word(s) of {len(counter)} in the vocabulary; "
            "at least 2 are needed: lower min_count or use a larger corpus"
        )
    return Vocabulary(tuple(w for w, _ in kept), np.array([c for _, c in kept], dtype=np.int64))


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


_ENCODE_BLOCK = 1_000_000


def encode(sentences: Iterable[list[str]], vocab: Vocabulary) -> EncodedCorpus:
    index = vocab.word_to_id
    # Ids go to int32 arrays every million: a list of Python ints for a whole 10-million-token
    # corpus would take about 10 times the memory of the array.
    blocks: list[np.ndarray] = []
    ids: list[int] = []
    lengths: list[int] = []
    raw = 0
    for tokens in sentences:
        raw += len(tokens)
        encoded = [index[t] for t in tokens if t in index]
        if encoded:
            ids.extend(encoded)
            lengths.append(len(encoded))
            if len(ids) >= _ENCODE_BLOCK:
                blocks.append(np.array(ids, dtype=np.int32))
                ids = []
    blocks.append(np.array(ids, dtype=np.int32))
    sentence_ids = np.repeat(np.arange(len(lengths), dtype=np.int32), np.array(lengths, dtype=np.int64))
    return EncodedCorpus(np.concatenate(blocks), sentence_ids, raw)


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


# Ids gathered in memory before they are written out to the memory map.
_ENCODE_BUFFER = 1 << 20


def encode_to_npy(sentences: Iterable[list[str]], vocab: Vocabulary, path: str | os.PathLike) -> EncodedFile:
    """Encode `sentences` straight into an int32 .npy at `path` (corpus.npy's layout), a buffer at a time.

    The vocabulary fixes the number of in-vocabulary tokens N, and at most N - 1 separators
    fit between them, so the file is created (sparse) for 2N - 1 entries and cut to its
    length at the end. No list of all ids is ever in memory, and each buffer is written
    through a memory map of just its own window, so neither address space nor resident
    memory grows with the corpus.
    """
    path = Path(path)
    tokens = int(vocab.counts.sum())
    with open(path, "wb") as handle:
        header_bytes = handle.write(_npy_header(2 * tokens - 1))
        handle.truncate(header_bytes + 4 * (2 * tokens - 1))
    index = vocab.word_to_id
    buffer: list[int] = []
    written = raw = 0

    def flush():
        nonlocal written
        if not buffer:
            return
        if written + len(buffer) > 2 * tokens - 1:
            raise CorpusError(f"{path}: the corpus has more in-vocabulary tokens than when its vocabulary was "
                              "counted (did the corpus change meanwhile?)")
        window = np.memmap(path, np.int32, "r+", offset=header_bytes + 4 * written, shape=(len(buffer),))
        window[:] = buffer
        window.flush()
        del window
        written += len(buffer)
        buffer.clear()

    for sentence in sentences:
        raw += len(sentence)
        encoded = [index[t] for t in sentence if t in index]
        if encoded:
            if written or buffer:
                buffer.append(-1)
            buffer.extend(encoded)
            if len(buffer) >= _ENCODE_BUFFER:
                flush()
    flush()
    _truncate_npy(path, written, header_bytes)
    return EncodedFile(path, written, raw, header_bytes)


def _npy_header(length: int) -> bytes:
    """The .npy header of a 1-D int32 array of `length` entries."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i4", "fortran_order": False, "shape": (length,)})
    return header.getvalue()


def _truncate_npy(path: Path, length: int, header_bytes: int) -> None:
    """Cut a 1-D int32 .npy to its first `length` entries: a new header of the same size, a shorter file."""
    header = _npy_header(length)
    # numpy pads headers to 64-byte multiples; a 1-D shape's digits never change the size in practice.
    if len(header) != header_bytes:
        raise AssertionError(f"npy header size changed from {header_bytes} to {len(header)} bytes")
    with open(path, "r+b") as handle:
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
