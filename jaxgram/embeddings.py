"""Read-only word vectors with gensim KeyedVectors' names and semantics, plus word2vec file formats."""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from jaxgram.errors import DataError, JaxgramError
from jaxgram.fileio import SHA256SUMS, atomic_open, recorded_sha256, sha256_bytes

# `jaxgram train` records its outputs' sha256 here, in `sha256sum -c` format.


class UnknownWordError(JaxgramError, KeyError):
    """A word missing from the vocabulary; the message lists close matches."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class Embeddings:
    """Vectors [V, D] (float32) plus their words, in id order."""

    def __init__(self, index_to_key: Sequence[str], vectors):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(index_to_key):
            raise ValueError(f"vectors must have shape [{len(index_to_key)}, D], got {vectors.shape}")
        self.index_to_key = list(index_to_key)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise ValueError("index_to_key contains duplicate words")
        self.vectors = vectors
        self.vectors.setflags(write=False)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # Zero vectors (e.g. an untrained row of W) stay zero instead of becoming NaN.
        self._unit = vectors / np.where(norms == 0, 1.0, norms)

    @classmethod
    def from_params(cls, params, vocab, which: str = "E") -> Embeddings:
        """Vectors from E (centre table), W (context table) or their mean, as the Embedding Geometry article offers."""
        if which == "E":
            table = np.asarray(params.E)
        elif which == "W":
            table = np.asarray(params.W)
        elif which == "mean":
            table = (np.asarray(params.E) + np.asarray(params.W)) / 2
        else:
            raise ValueError(f"which={which!r} is not allowed: choose E, W or mean")
        return cls(vocab.words, table)

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: str) -> bool:
        return word in self.key_to_index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._index(word)]

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def _index(self, word: str) -> int:
        index = self.key_to_index.get(word)
        if index is None:
            close = difflib.get_close_matches(word, self.index_to_key, n=5)
            hint = f"; close matches: {', '.join(close)}" if close else "; no close matches"
            raise UnknownWordError(f"word {word!r} is not in the vocabulary ({len(self)} words){hint}")
        return index

    def unit_vector(self, word: str) -> np.ndarray:
        return self._unit[self._index(word)]

    def similarity(self, word_a: str, word_b: str) -> float:
        return float(self.unit_vector(word_a) @ self.unit_vector(word_b))

    def _terms(self, words) -> list:
        if words is None:
            return []
        if isinstance(words, str):
            return [words]
        return list(words)

    def _unit_of(self, term) -> np.ndarray:
        if isinstance(term, str):
            return self.unit_vector(term)
        vector = np.asarray(term, dtype=np.float32)
        return vector / (np.linalg.norm(vector) or 1.0)

    def _ranked(self, scores: np.ndarray, exclude: Iterable, topn: int | None):
        excluded = {self.key_to_index[t] for t in exclude if isinstance(t, str)}
        if topn is None:
            return scores
        order = np.argsort(-scores, kind="stable")
        result = []
        for index in order:
            if index not in excluded:
                result.append((self.index_to_key[index], float(scores[index])))
                if len(result) == topn:
                    break
        return result

    def most_similar(self, positive=None, negative=None, topn: int | None = 10):
        """Words closest to mean(unit(positive)) - mean-weighted unit(negative), inputs excluded."""
        positive, negative = self._terms(positive), self._terms(negative)
        if not positive and not negative:
            raise ValueError("most_similar needs at least one positive or negative word")
        terms = [(self._unit_of(t), 1.0) for t in positive] + [(self._unit_of(t), -1.0) for t in negative]
        mean = np.mean([weight * vector for vector, weight in terms], axis=0)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        return self._ranked(self._unit @ mean, positive + negative, topn)

    def most_similar_cosmul(self, positive=None, negative=None, topn: int | None = 10):
        """Levy & Goldberg's 3CosMul, as gensim: cosines shifted to [0, 1] with (1 + cos) / 2."""
        positive, negative = self._terms(positive), self._terms(negative)
        if not positive:
            raise ValueError("most_similar_cosmul needs at least one positive word")
        pos = [(1 + self._unit @ self._unit_of(t)) / 2 for t in positive]
        neg = [(1 + self._unit @ self._unit_of(t)) / 2 for t in negative]
        scores = np.prod(pos, axis=0) / (np.prod(neg, axis=0) + 1e-6)
        return self._ranked(scores, positive + negative, topn)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word furthest from the mean of the others' unit vectors (gensim's rule)."""
        words = list(words)
        if not words:
            raise ValueError("doesnt_match needs at least one word")
        units = np.array([self.unit_vector(w) for w in words])
        mean = units.mean(axis=0)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        return words[int(np.argmin(units @ mean))]

    # -- word2vec formats ------------------------------------------------------------

    def save_word2vec_format(self, path: str | os.PathLike, binary: bool = False, also_tsv=None) -> None:
        """word2vec's format: a `V D` header, then one word and its D floats per row.

        `also_tsv`: a path that receives the same text floats, tab-separated and without words
        (TensorBoard's vectors.tsv), written in the same pass: formatting the floats is most of
        the cost, and a row at a time keeps memory at one row whatever the vocabulary.
        """
        if any(not w or any(ch.isspace() for ch in w) for w in self.index_to_key):
            raise ValueError("word2vec format cannot store empty words or words containing whitespace")
        with atomic_open(path, "wb") as handle, (atomic_open(also_tsv, "wb") if also_tsv is not None
                                                  else contextlib.nullcontext()) as tsv:
            handle.write(f"{len(self)} {self.vector_size}\n".encode())
            for word, row in zip(self.index_to_key, self.vectors):
                if binary:
                    handle.write(word.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")
                    continue
                # 9 significant digits round-trip every float32 exactly.
                text = " ".join(f"{v:.9g}" for v in row.tolist())
                handle.write(f"{word} {text}\n".encode())
                if tsv is not None:
                    tsv.write((text.replace(" ", "\t") + "\n").encode("utf-8"))

    @classmethod
    def load_word2vec_format(cls, path: str | os.PathLike, binary: bool = False) -> Embeddings:
        """Load a word2vec text or binary file; DataError names the path and line on malformed input.

        When a SHA256SUMS file beside `path` records its sha256 (as `jaxgram train` writes),
        a file that does not match is refused as truncated or altered; a file without a
        record (from gensim, word2vec or anyone else) is loaded unchecked.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read vectors file {path}: {exc.strerror or exc}") from exc
        expected = recorded_sha256(path)
        if expected is not None and sha256_bytes(data) != expected:
            raise DataError(f"vectors file {path} does not match the sha256 recorded in "
                            f"{path.parent / SHA256SUMS}: it was truncated or altered")
        header_end = data.find(b"\n")
        header = data[: header_end if header_end >= 0 else len(data)].split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise DataError(f"{path}: line 1 must be the header `VOCAB_SIZE DIM`, got {data[:60]!r}")
        count, dim = int(header[0]), int(header[1])
        if count < 1 or dim < 1:
            raise DataError(f"{path}: line 1 declares {count} words of dimension {dim}; both must be >= 1")
        reader = _read_binary_rows if binary else _read_text_rows
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
            words, vectors = reader(path, data[header_end + 1:], count, dim)
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            # NaN or inf would make every similarity NaN: refuse rather than rank garbage.
            line = int(np.argmin(finite)) + 2
            raise DataError(f"{path}: line {line} has a value that is not finite (NaN or infinity)")
        if len(set(words)) != len(words):
            raise DataError(f"{path}: the same word appears on more than one line")
        return cls(words, vectors)


def _read_text_rows(path: Path, body: bytes, count: int, dim: int):
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != count:
        raise DataError(f"{path}: header (line 1) declares {count} words but the file has {len(lines)} rows")
    words, vectors = [], np.empty((count, dim), dtype=np.float32)
    for row, line in enumerate(lines):
        number = row + 2
        try:
            fields = line.decode("utf-8").rstrip().split(" ")
        except UnicodeDecodeError:
            raise DataError(f"{path}: line {number} is not valid UTF-8") from None
        if len(fields) != dim + 1:
            raise DataError(f"{path}: line {number} has {len(fields) - 1} values, expected {dim}")
        try:
            vectors[row] = np.array(fields[1:], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}: line {number} has a value that is not a number") from None
        words.append(fields[0])
    return words, vectors


def _read_binary_rows(path: Path, body: bytes, count: int, dim: int):
    words, vectors = [], np.empty((count, dim), dtype=np.float32)
    position, width = 0, 4 * dim
    for row in range(count):
        number = row + 2  # header is line 1; each row ends with a newline
        while position < len(body) and body[position:position + 1] == b"\n":
            position += 1
        space = body.find(b" ", position)
        if space < 0 or space + 1 + width > len(body):
            raise DataError(f"{path}: row {row + 1} (line {number}) is truncated; "
                            f"header declares {count} words of dimension {dim}")
        try:
            words.append(body[position:space].decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"{path}: the word on line {number} is not valid UTF-8") from None
        vectors[row] = np.frombuffer(body, dtype="<f4", count=dim, offset=space + 1)
        position = space + 1 + width
    if body[position:].strip(b"\n"):
        raise DataError(f"{path}: data after the {count} rows the header declares")
    return words, vectors
