"""word2vec's file formats, text and binary, without gensim: what training writes and the vectors loader reads.

Writing streams row by row (memory: one row), and can write TensorBoard's vectors.tsv from the
same formatting pass. Reading takes gensim's options (limit, no_header, encoding, a `.gz` name)
in one pass that refuses a malformed file naming its line and refuses non-finite values; when a
SHA256SUMS file beside the file records its sha256 (as `jaxgram train` writes), a file that does
not match is refused as truncated or altered, and a file without a record (from gensim, word2vec
or anyone else) is read unchecked. jaxgram.embeddings builds gensim's KeyedVectors on these; the
trainer writes its outputs with them and never imports gensim.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxgram.errors import ConfigError, DataError
from jaxgram.fileio import SHA256SUMS, atomic_open, atomic_write_text, recorded_sha256, sha256_bytes

log = logging.getLogger(__name__)


def write_word2vec(fname: str | os.PathLike, words: Sequence[str], vectors: np.ndarray, binary: bool = False,
                   also_tsv=None) -> None:
    """word2vec's format: a `V D` header, then one word and its D floats per row.

    `also_tsv`: a path that receives the same text floats, tab-separated and without words
    (TensorBoard's vectors.tsv), written in the same pass: formatting the floats is most of
    the cost. Rows go out ROWS_PER_WRITE at a time, so memory holds one block of rows
    whatever the vocabulary, and the file is hashed as it is written (fileio.atomic_open).
    """
    if any(not w or any(ch.isspace() for ch in w) for w in words):
        raise ValueError("word2vec format cannot store empty words or words containing whitespace")
    with atomic_open(fname, "wb") as handle, (atomic_open(also_tsv, "wb") if also_tsv is not None
                                               else contextlib.nullcontext()) as tsv:
        handle.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for start in range(0, len(words), ROWS_PER_WRITE):
            block_words, block = words[start:start + ROWS_PER_WRITE], vectors[start:start + ROWS_PER_WRITE]
            if binary:
                handle.write(_binary_rows(block_words, block))
                continue
            texts = [_text_row(row) for row in block]
            handle.write("".join(f"{word} {text}\n" for word, text in zip(block_words, texts)).encode("utf-8"))
            if tsv is not None:
                tsv.write(_tsv_rows(texts))


# Rows formatted and written per write() call: a few MB at D = 300.
ROWS_PER_WRITE = 4096


def _binary_rows(words: Sequence[str], block: np.ndarray) -> bytes:
    """Rows in word2vec's binary format: `word `, the D little-endian float32s, a newline."""
    floats = memoryview(np.ascontiguousarray(block, "<f4")).cast("B")
    width = 4 * block.shape[1]
    parts = []
    for i, word in enumerate(words):
        parts += (word.encode("utf-8"), b" ", floats[i * width:(i + 1) * width], b"\n")
    return b"".join(parts)


def _tsv_rows(texts: Sequence[str]) -> bytes:
    return "".join(text.replace(" ", "\t") + "\n" for text in texts).encode("utf-8")


def write_fvocab(fname: str | os.PathLike, words: Sequence[str], counts) -> None:
    """word2vec.c's -save-vocab format, `word count` per line in the vectors' order (a word whose count is None
    is left out): what gensim's load_word2vec_format(..., fvocab=) and read_fvocab_counts read."""
    atomic_write_text(fname, "".join(f"{word} {count}\n" for word, count in zip(words, counts) if count is not None))


def write_projector_tsv(fname: str | os.PathLike, vectors: np.ndarray) -> None:
    """TensorBoard's vectors.tsv alone: the floats as write_word2vec writes them, tab-separated, no words."""
    with atomic_open(fname, "wb") as handle:
        for start in range(0, len(vectors), ROWS_PER_WRITE):
            handle.write(_tsv_rows([_text_row(row) for row in vectors[start:start + ROWS_PER_WRITE]]))


def read_word2vec(path: Path, binary: bool = False, encoding: str = "utf8", unicode_errors: str = "strict",
                  limit: int | None = None, no_header: bool = False) -> tuple[list[str], np.ndarray]:
    """(words, float32 vectors [V, D]) of a word2vec file; DataError names the path and line on malformed input."""
    if no_header and binary:
        raise ConfigError("no_header=True is not allowed with binary=True: only text files (GloVe's) lack the header")
    data = read_checked(path, "vectors file")
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"vectors file {path} is not a readable gzip file: {exc}") from None
    count, dim, body, first_line = _header(path, data, no_header)
    rows = count if limit is None else min(count, limit)
    reader = _read_binary_rows if binary else _read_text_rows
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused just below
        words, vectors = reader(path, body, count, dim, rows, first_line, encoding, unicode_errors)
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        # NaN or inf would make every similarity NaN: refuse rather than rank garbage.
        line = int(np.argmin(finite)) + first_line
        raise DataError(f"{path}: line {line} has a value that is not finite (NaN or infinity)")
    if len(set(words)) != len(words):
        raise DataError(f"{path}: the same word appears on more than one line")
    return words, vectors


def _text_row(row: np.ndarray) -> str:
    """A row's floats as word2vec's text format writes them: 9 significant digits round-trip every float32."""
    return " ".join(f"{v:.9g}" for v in row.tolist())


def read_checked(path: Path, what: str) -> bytes:
    """The bytes of `path`; DataError if unreadable or unlike the sha256 a SHA256SUMS file beside it records."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    expected = recorded_sha256(path)
    if expected is not None and sha256_bytes(data) != expected:
        raise DataError(f"{what} {path} does not match the sha256 recorded in "
                        f"{path.parent / SHA256SUMS}: it was truncated or altered")
    return data


def read_fvocab_counts(path: Path, words: list[str]) -> list[int | None]:
    """Each of `words`' count in a `word count` per line file; None for a word it does not list."""
    try:
        lines = read_checked(path, "vocabulary file").decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise DataError(f"vocabulary file {path} is not valid UTF-8") from None
    listed = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not (fields[1].isascii() and fields[1].isdigit()):
            raise DataError(f"{path}: line {number} must be `word count` (count an integer >= 0), got {line[:60]!r}")
        listed[fields[0]] = int(fields[1])  # a word listed twice keeps its last count, as in gensim
    counts = [listed.get(word) for word in words]
    if None in counts:
        missing = [word for word, count in zip(words, counts) if count is None]
        log.warning("vocabulary file %s does not list %d of the %d words (%s, ...): they have no count",
                    path, len(missing), len(words), missing[0])
    return counts


def _header(path: Path, data: bytes, no_header: bool) -> tuple[int, int, bytes, int]:
    """(words, dimension, the rows' bytes, the line number of the first row) of a word2vec file."""
    if no_header:  # GloVe: no `V D` line; every non-empty line is a row, the first gives the dimension
        first = data[: data.find(b"\n") if b"\n" in data else len(data)].split()
        if len(first) < 2:
            raise DataError(f"{path}: line 1 must be a word and its values, got {data[:60]!r}")
        return sum(1 for line in data.split(b"\n") if line.strip()), len(first) - 1, data, 1
    header_end = data.find(b"\n")
    header = data[: header_end if header_end >= 0 else len(data)].split()
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise DataError(f"{path}: line 1 must be the header `VOCAB_SIZE DIM`, got {data[:60]!r}")
    count, dim = int(header[0]), int(header[1])
    if count < 1 or dim < 1:
        raise DataError(f"{path}: line 1 declares {count} words of dimension {dim}; both must be >= 1")
    return count, dim, data[header_end + 1:], 2


def _decoded(path: Path, word: bytes, number: int, encoding: str, errors: str) -> str:
    try:
        return word.decode(encoding, errors)
    except UnicodeDecodeError:
        raise DataError(f"{path}: the word on line {number} is not valid {encoding}") from None


def _read_text_rows(path: Path, body: bytes, count: int, dim: int, rows: int, first_line: int, encoding: str,
                    errors: str):
    """The first `rows` of `count` text rows; all `count` must be there unless `rows` is fewer (limit)."""
    lines = [line for line in body.split(b"\n") if line.strip()] if first_line == 1 else body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != count and not (rows < count and len(lines) >= rows):
        raise DataError(f"{path}: header (line 1) declares {count} words but the file has {len(lines)} rows")
    words, vectors = [], np.empty((rows, dim), dtype=np.float32)
    for row, line in enumerate(lines[:rows]):
        number = row + first_line
        fields = line.rstrip().split(b" ")
        if len(fields) != dim + 1:
            raise DataError(f"{path}: line {number} has {len(fields) - 1} values, expected {dim}")
        try:
            vectors[row] = np.array(fields[1:], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}: line {number} has a value that is not a number") from None
        words.append(_decoded(path, fields[0], number, encoding, errors))
    return words, vectors


def _read_binary_rows(path: Path, body: bytes, count: int, dim: int, rows: int, first_line: int, encoding: str,
                      errors: str):
    """The first `rows` of `count` binary rows (word, space, dim little-endian float32, newline)."""
    words, vectors = [], np.empty((rows, dim), dtype=np.float32)
    position, width = 0, 4 * dim
    for row in range(rows):
        number = row + first_line  # header is line 1; each row ends with a newline
        while position < len(body) and body[position:position + 1] == b"\n":
            position += 1
        space = body.find(b" ", position)
        if space < 0 or space + 1 + width > len(body):
            raise DataError(f"{path}: row {row + 1} (line {number}) is truncated; "
                            f"header declares {count} words of dimension {dim}")
        words.append(_decoded(path, body[position:space], number, encoding, errors))
        vectors[row] = np.frombuffer(body, dtype="<f4", count=dim, offset=space + 1)
        position = space + 1 + width
    if rows == count and body[position:].strip(b"\n"):
        raise DataError(f"{path}: data after the {count} rows the header declares")
    return words, vectors
