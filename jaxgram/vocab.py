"""Vocabulary: counting, min_count / max_vocab_size pruning, frequency-sorted ids, encoding.

A corpus file is LineSentence text: one sentence per line, tokens separated by whitespace.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from jaxgram.errors import ConfigError, DataError
from jaxgram.fileio import atomic_open, atomic_write_text, sha256_bytes


class CorpusError(DataError, ValueError):
    """The corpus file is missing, empty or not UTF-8 (a ValueError too, as the issue asks)."""


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
        """Write seed 000's vocabulary index: `id word count`, one word per line (tab-separated)."""
        atomic_write_text(path, self.index_text())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
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


def read_sentences(path: str | os.PathLike) -> Iterator[list[str]]:
    """Yield the token lists of a LineSentence file; DataError names the path on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} does not exist or is not a file")
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise CorpusError(f"corpus file {path}: line {number} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
                tokens = line.split()
                if tokens:
                    yield tokens
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc.strerror or exc}") from exc


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


def encode(sentences: Iterable[list[str]], vocab: Vocabulary) -> EncodedCorpus:
    index = vocab.word_to_id
    ids: list[int] = []
    lengths: list[int] = []
    raw = 0
    for tokens in sentences:
        raw += len(tokens)
        encoded = [index[t] for t in tokens if t in index]
        if encoded:
            ids.extend(encoded)
            lengths.append(len(encoded))
    sentence_ids = np.repeat(np.arange(len(lengths), dtype=np.int32), np.array(lengths, dtype=np.int64))
    return EncodedCorpus(np.array(ids, dtype=np.int32), sentence_ids, raw)


def save_encoded_npy(path: str | os.PathLike, corpus: EncodedCorpus) -> None:
    """The encoded corpus as one int32 array with -1 between sentences."""
    with atomic_open(path, "wb") as handle:
        np.save(handle, _with_separators(corpus), allow_pickle=False)


def load_encoded_npy(path: str | os.PathLike) -> EncodedCorpus:
    try:
        flat = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read encoded corpus {path}: {exc}") from exc
    if flat.dtype != np.int32 or flat.ndim != 1:
        raise DataError(f"encoded corpus {path} must be a 1-D int32 array, got {flat.dtype} {flat.shape}")
    boundary = flat < 0
    sentence_ids = np.cumsum(boundary, dtype=np.int64)[~boundary]
    ids = flat[~boundary]
    return EncodedCorpus(ids, (sentence_ids - (sentence_ids[0] if len(ids) else 0)).astype(np.int32), len(ids))


def save_encoded_text(path: str | os.PathLike, corpus: EncodedCorpus) -> None:
    """Seed 000's corpus_encoded.txt: one sentence per line, ids separated by spaces."""
    atomic_write_text(path, "".join(" ".join(map(str, s.tolist())) + "\n" for s in corpus.sentences()))


def _with_separators(corpus: EncodedCorpus) -> np.ndarray:
    pieces = []
    for sentence in corpus.sentences():
        pieces.append(sentence)
        pieces.append(np.array([-1], dtype=np.int32))
    return np.concatenate(pieces[:-1]) if pieces else np.zeros(0, np.int32)
