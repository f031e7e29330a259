"""word2vec's file formats, text and binary, without gensim: what training writes and the vectors loader reads.

Writing streams row by row (memory: one row), and can write TensorBoard's vectors.tsv from the
same formatting pass. Reading takes gensim's options (limit, no_header, encoding, a `.gz` or
`.bz2` name) in one streamed pass: the file is read (and decompressed) a chunk at a time and
rows are parsed as they come, so memory holds the vectors and a bounded buffer, never the file.
A header claiming more rows than the file can hold is refused before anything is allocated; a
malformed row is refused naming its line, as are non-finite values and a word read twice. When
a SHA256SUMS file beside the file records its sha256 (as `jaxgram train` writes), the digest is
taken while reading and a file that does not match is refused as truncated or altered; a file
without a record (from gensim, word2vec or anyone else) is read unchecked. jaxgram.embeddings
builds gensim's KeyedVectors on these; the trainer writes its outputs with them and never
imports gensim.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import logging
import os
import shutil
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from jaxgram.errors import ConfigError, DataError, JaxgramError
from jaxgram.fileio import SHA256SUMS, HashingReader, atomic_open, recorded_sha256

log = logging.getLogger(__name__)


def write_word2vec(fname: str | os.PathLike, words: Sequence[str], vectors: np.ndarray, binary: bool = False,
                   also_tsv=None, *, total_vec: int | None = None, write_header: bool = True,
                   append: bool = False) -> None:
    """word2vec's format: a `V D` header, then one word and its D floats per row.

    `also_tsv`: a path that receives the same text floats, tab-separated and without words
    (TensorBoard's vectors.tsv), written in the same pass: formatting the floats is most of
    the cost. Rows go out FLOATS_PER_WRITE floats at a time, so memory holds one block of rows
    whatever the vocabulary, and the file is hashed as it is written (fileio.atomic_open).
    `vectors` may be anything with .shape whose row slices are arrays, or that reads its own rows
    in blocks (see row_blocks: a row-sharded table is never whole on the host). gensim's options:
    `total_vec` is the V the header declares (default: the rows written), `write_header=False`
    leaves the header out (GloVe's text), `append=True` writes after what the file holds.
    """
    if any(not w or any(ch.isspace() for ch in w) for w in words):
        raise ValueError("word2vec format cannot store empty words or words containing whitespace")
    with _writing(fname, append) as handle, (atomic_open(also_tsv, "wb") if also_tsv is not None
                                             else contextlib.nullcontext()) as tsv:
        if write_header:
            handle.write(f"{len(words) if total_vec is None else total_vec} {vectors.shape[1]}\n".encode())
        rows = rows_per_write(vectors.shape[1])
        for start, block in zip(range(0, len(words), rows), row_blocks(vectors, rows, len(words))):
            block_words = words[start:start + rows]
            if binary:
                handle.write(_binary_rows(block_words, block))
                continue
            texts = [_text_row(row) for row in block]
            handle.write("".join(f"{word} {text}\n" for word, text in zip(block_words, texts)).encode("utf-8"))
            if tsv is not None:
                tsv.write(_tsv_rows(texts))


# Floats formatted and written per write() call, whole rows (at least one): a few MB of text
# whatever D (a fixed count of rows was 16 GB of text at D = 100,000).
FLOATS_PER_WRITE = 2**20


def rows_per_write(dim: int) -> int:
    """Whole rows of `dim` floats in a block of about FLOATS_PER_WRITE floats (at least one row)."""
    return max(1, FLOATS_PER_WRITE // max(1, dim))


def row_blocks(vectors, rows: int, count: int | None = None) -> Iterator[np.ndarray]:
    """The first `count` (default: all) rows of `vectors`, `rows` at a time: from its own blocks(rows) when it
    has them (table_rows.ShardedTable gathers each block from the devices that hold it), else by slicing."""
    count = vectors.shape[0] if count is None else count
    if hasattr(vectors, "blocks"):
        yield from vectors.blocks(rows)
        return
    for start in range(0, count, rows):
        yield vectors[start:start + rows]


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


def write_fvocab(fname: str | os.PathLike, words: Sequence[str], counts, append: bool = False) -> None:
    """word2vec.c's -save-vocab format, `word count` per line in the vectors' order (a word whose count is None
    is left out): what gensim's load_word2vec_format(..., fvocab=) and read_fvocab_counts read."""
    with _writing(fname, append) as handle:
        handle.write("".join(f"{word} {count}\n" for word, count in zip(words, counts)
                             if count is not None).encode("utf-8"))


@contextlib.contextmanager
def _writing(fname: str | os.PathLike, append: bool) -> Iterator[io.RawIOBase]:
    """atomic_open(fname); with `append`, what the file holds is copied in first, so that a reader (or a write
    cut short) still sees the old file or the whole new one, never a half-appended one."""
    with atomic_open(fname, "wb") as handle:
        if append:
            with contextlib.suppress(FileNotFoundError), open(fname, "rb") as existing:
                shutil.copyfileobj(existing, handle, READ_CHUNK)
        yield handle


def write_projector_tsv(fname: str | os.PathLike, vectors: np.ndarray) -> None:
    """TensorBoard's vectors.tsv alone: the floats as write_word2vec writes them, tab-separated, no words."""
    with atomic_open(fname, "wb") as handle:
        for block in row_blocks(vectors, rows_per_write(vectors.shape[1])):
            handle.write(_tsv_rows([_text_row(row) for row in block]))


def _text_row(row: np.ndarray) -> str:
    """A row's floats as word2vec's text format writes them: 9 significant digits round-trip every float32."""
    return " ".join(f"{v:.9g}" for v in row.tolist())


# -- reading -----------------------------------------------------------------------------------------

# Files are read (and decompressed) this many bytes at a time.
READ_CHUNK = 1 << 20
# The longest header, text line and binary word read: anything longer is refused, not buffered, whatever a
# compressed file expands to. A text row of 300 values is about 4 KB; a word is rarely 100 bytes.
MAX_HEADER_BYTES = 1024
MAX_TEXT_ROW_BYTES = 32 << 20
MAX_WORD_BYTES = 1 << 16
# deflate (gzip) expands data at most 1032-fold (zlib's documented limit): a bound on what a .gz can hold.
# bzip2 has no useful bound; a .bz2's claims are checked as its rows arrive.
GZIP_MAX_RATIO = 1032
# What bytes.strip() strips: a line of only these is blank.
_WHITESPACE = b" \t\n\r\x0b\x0c"
# The names gensim users give word2vec's binary format (GoogleNews ships as .bin.gz).
BINARY_SUFFIXES = (".bin", ".bin.gz", ".bin.bz2")


def is_binary_name(path: str | os.PathLike) -> bool:
    """Whether a vectors file's name says word2vec binary: .bin, .bin.gz or .bin.bz2 (what the CLI infers)."""
    return Path(path).name.endswith(BINARY_SUFFIXES)


def read_word2vec(path: Path, binary: bool = False, encoding: str = "utf8", unicode_errors: str = "strict",
                  limit: int | None = None, no_header: bool = False) -> tuple[list[str], np.ndarray]:
    """(words, float32 vectors [V, D]) of a word2vec file; DataError names the path and line on malformed input."""
    if no_header and binary:
        raise ConfigError("no_header=True is not allowed with binary=True: only text files (GloVe's) lack the header")
    words = _Words(path, encoding, unicode_errors)
    # A value beyond float32 becomes inf, refused as not finite.
    with _opened(path, "vectors file") as stream, np.errstate(over="ignore"):
        vectors = _read_glove(stream, limit, words) if no_header else _read_with_header(stream, binary, limit, words)
    return words.in_order(), vectors


def _read_with_header(stream: _Stream, binary: bool, limit: int | None, words: _Words) -> np.ndarray:
    """The vectors of a file with gensim's `V D` header, checked against what the file can hold first."""
    count, dim = _header(stream)
    rows = count if limit is None else min(count, limit)
    _check_room(stream, count, dim, rows, binary)
    return (_read_binary if binary else _read_text)(stream, count, dim, rows, words)


def read_fvocab_counts(path: Path, words: list[str], encoding: str = "utf8",
                       unicode_errors: str = "strict") -> list[int | None]:
    """Each of `words`' count in a `word count` per line file; None for a word it does not list. Its words are
    decoded as the vectors file's are (`encoding`, `unicode_errors`), so that they match."""
    listed = {}
    longest = MAX_WORD_BYTES + 32  # a word, a space and a count
    with _opened(path, "vocabulary file") as stream:
        while (line := stream.line(longest)) is not None:
            if len(line) > longest:
                raise DataError(f"{path}: line {stream.line_number} is longer than {longest:,} bytes: "
                                f"not a `word count` line")
            try:
                fields = line.decode(encoding, unicode_errors).split()
            except UnicodeDecodeError as exc:
                raise UndecodableError(f"vocabulary file {path} is not valid {encoding} (line {stream.line_number})",
                                       exc) from None
            if not fields:
                continue
            # 18 digits at most: int() of a longer string may be refused, and no corpus holds 10**18 tokens.
            if len(fields) != 2 or not (fields[1].isascii() and fields[1].isdigit() and len(fields[1]) <= 18):
                raise DataError(f"{path}: line {stream.line_number} must be `word count` (count an integer >= 0), "
                                f"got {line[:60].decode('utf-8', 'replace')!r}")
            listed[fields[0]] = int(fields[1])  # a word listed twice keeps its last count, as in gensim
    counts = [listed.get(word) for word in words]
    if None in counts:
        missing = [word for word, count in zip(words, counts) if count is None]
        log.warning("vocabulary file %s does not list %d of the %d words (%s, ...): they have no count",
                    path, len(missing), len(words), missing[0])
    return counts


class UndecodableError(DataError, UnicodeDecodeError):
    """A word that is not valid in the file's encoding: a DataError naming the file and line, and the
    UnicodeDecodeError that gensim raises there (what a caller retrying with unicode_errors= catches)."""

    def __init__(self, message: str, cause: UnicodeDecodeError):
        UnicodeDecodeError.__init__(self, cause.encoding, cause.object, cause.start, cause.end, cause.reason)
        self.message = message

    def __str__(self) -> str:  # UnicodeDecodeError's would describe the bytes, not the file
        return self.message


# What a name's last suffix says the file is compressed with, and how to read it decompressed.
_COMPRESSIONS = {".gz": ("gzip", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")), ".bz2": ("bz2", bz2.BZ2File)}


class _Stream:
    """A file read forward a chunk at a time: decompressed as it is read (.gz, .bz2), hashed for the
    SHA256SUMS record beside it, and held only from the cursor to the end of the last chunk read."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = path, what
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
            self.size = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
        self._hashing = HashingReader(self._file)
        self.compression, decompressed = _COMPRESSIONS.get(path.suffix, (None, None))
        # A large buffer under the decompressor: it asks for small blocks, each a Python call to the hashing reader.
        self._source = self._hashing if decompressed is None else decompressed(io.BufferedReader(self._hashing,
                                                                                                 READ_CHUNK))
        # _data[_cursor:] is what is read but not yet used; _dropped counts the bytes used before _data.
        self._data, self._cursor, self._dropped = b"", 0, 0
        self.line_number = 0  # of the last line line() returned

    def close(self) -> None:
        self._source.close()
        self._file.close()

    @property
    def position(self) -> int:
        """Bytes used so far, of the decompressed file."""
        return self._dropped + self._cursor

    def room(self) -> int | None:
        """The most bytes that can follow the cursor: a plain file's rest, what a .gz's rest can expand to at
        most; None for a .bz2 (no useful bound)."""
        most = {None: self.size, "gzip": GZIP_MAX_RATIO * self.size}.get(self.compression)
        return None if most is None else most - self.position

    def pending(self) -> int:
        return len(self._data) - self._cursor

    def find(self, separator: bytes, window: int) -> int:
        """Offset from the cursor of the first `separator` in the next `window` bytes, reading on no further
        than that; -1 if there is none."""
        searched = 0
        while True:
            end = min(len(self._data), self._cursor + window)
            found = self._data.find(separator, self._cursor + searched, end)
            if found >= 0:
                return found - self._cursor
            searched = end - self._cursor
            # Read at least as much as is pending, so a long line takes few reads and few copies.
            if searched >= window or not self._more(searched):
                return -1

    def line(self, cap: int = MAX_TEXT_ROW_BYTES) -> bytes | None:
        """The next line without its newline; None at the end of the file. A line longer than `cap` comes back
        as its first cap + 1 bytes, read no further: the caller refuses it."""
        end = self.find(b"\n", cap + 1)
        if end < 0:
            end = min(self.pending(), cap + 1)  # the last line, without a newline, or none
            if end == 0:
                return None
        line = self._data[self._cursor:self._cursor + end]
        self._cursor = min(self._cursor + end + 1, len(self._data))
        self.line_number += 1
        return line

    def take(self, size: int) -> bytes:
        """The next `size` bytes, which find() has already seen."""
        taken = self._data[self._cursor:self._cursor + size]
        self._cursor += size
        return taken

    def read_into(self, target: memoryview) -> int:
        """Fill `target` from the cursor on: the buffered bytes, then straight from the file, so that a long row
        is never buffered whole. The bytes filled: fewer only at the end of the file."""
        filled = min(len(target), self.pending())
        target[:filled] = memoryview(self._data)[self._cursor:self._cursor + filled]
        self._cursor += filled
        while filled < len(target):
            got = self._call(self._source.readinto, target[filled:])
            if not got:
                break
            filled, self._dropped = filled + got, self._dropped + got
        return filled

    def only_left(self, allowed: bytes) -> bool:
        """Whether the rest of the file is only bytes in `allowed`, read a chunk at a time (not a line at a time:
        a compressed file's million blank lines take no Python per line)."""
        while not self._data[self._cursor:].translate(None, allowed):  # what is left once `allowed` is taken out
            self._cursor = len(self._data)
            if not self._more():
                return True
        return False

    def verify(self) -> None:
        """DataError if the file is unlike the sha256 its SHA256SUMS records: the rest of the file, which the
        reading may have left (limit, an early refusal), is hashed here; without a record, nothing is read."""
        expected = recorded_sha256(self.path)
        if expected is None:
            return
        while self._call(self._hashing.read, READ_CHUNK):
            pass
        if self._hashing.hexdigest() != expected:
            raise DataError(f"{self.what} {self.path} does not match the sha256 recorded in "
                            f"{self.path.parent / SHA256SUMS}: it was truncated or altered")

    def _more(self, at_least: int = 0) -> bool:
        """Append a chunk (or `at_least` bytes, if more) to the unused bytes; False at the end of the file."""
        block = self._call(self._source.read, max(at_least, READ_CHUNK))
        if not block:
            return False
        self._dropped += self._cursor
        self._data, self._cursor = self._data[self._cursor:] + block, 0
        return True

    def _call(self, read, argument):
        try:
            return read(argument)
        except (OSError, EOFError, zlib.error) as exc:
            if self.compression is None:
                raise DataError(f"cannot read {self.what} {self.path}: {getattr(exc, 'strerror', None) or exc}") from exc
            raise DataError(f"{self.what} {self.path} is not a readable {self.compression} file: {exc}") from None


@contextlib.contextmanager
def _opened(path: Path, what: str) -> Iterator[_Stream]:
    """A _Stream of `path`, closed after. Its SHA256SUMS record is checked after the reading, and also when the
    reading refused the file: a file truncated or altered is reported as that rather than as its symptom."""
    stream = _Stream(path, what)
    try:
        try:
            yield stream
        except DataError:
            stream.verify()
            raise
        stream.verify()
    finally:
        stream.close()


class _Words:
    """The words read so far with their lines, in the file's order. A word read twice is refused as it is read
    (not after the file: a repeated row cannot fill memory)."""

    def __init__(self, path: Path, encoding: str, errors: str):
        self._path, self._encoding, self._errors = path, encoding, errors
        self._lines: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, word: bytes, line: int) -> None:
        try:
            text = word.decode(self._encoding, self._errors)
        except UnicodeDecodeError as exc:
            raise UndecodableError(f"{self._path}: the word on line {line} is not valid {self._encoding}", exc) from None
        first = self._lines.setdefault(text, line)
        if first != line:
            raise DataError(f"{self._path}: line {line} repeats the word {text!r} of line {first}")

    def in_order(self) -> list[str]:
        return list(self._lines)


class _Vectors:
    """float32 rows filled in order. Allocated up front for as many rows as twice the file's size holds in
    floats, which covers every plain file (a row takes at least 2 bytes a value in text, 4 in binary), and
    doubled when more rows arrive, never past `most` (the rows the header declares): what a compressed
    file claims costs no memory until its rows arrive."""

    def __init__(self, path: Path, dim: int, most: int | None, file_size: int):
        self._path, self._dim, self._most = path, dim, most
        self._array = None
        self._allocate(self._capped(max(1, file_size // (2 * dim))))

    def row(self, index: int) -> np.ndarray:
        """Row `index` (at most one past the last), to fill."""
        if index == len(self._array):
            self._allocate(self._capped(2 * index))
        return self._array[index]

    def filled(self, rows: int) -> np.ndarray:
        """The array of the first `rows` rows, all filled."""
        if rows != len(self._array):
            self._allocate(rows)
        return self._array

    def _capped(self, rows: int) -> int:
        return rows if self._most is None else min(rows, self._most)

    def _allocate(self, rows: int) -> None:
        try:
            if self._array is None:
                self._array = np.empty((rows, self._dim), dtype=np.float32)
            else:  # realloc: no copy for a large array, and nothing else refers to it
                self._array.resize((rows, self._dim), refcheck=False)
        except MemoryError:
            raise JaxgramError(f"{self._path}: not enough memory for {rows} vectors of dimension {self._dim} "
                               f"({4 * rows * self._dim:,} bytes)") from None


def _header(stream: _Stream) -> tuple[int, int]:
    """(words, dimension) from line 1, `V D`."""
    line = stream.line(MAX_HEADER_BYTES) or b""
    header = line.split()
    if len(line) > MAX_HEADER_BYTES or len(header) != 2 or not all(h.isdigit() for h in header):
        raise DataError(f"{stream.path}: line 1 must be the header `VOCAB_SIZE DIM`, got {line[:60]!r}")
    count, dim = int(header[0]), int(header[1])
    if count < 1 or dim < 1:
        raise DataError(f"{stream.path}: line 1 declares {count} words of dimension {dim}; both must be >= 1")
    return count, dim


def _check_room(stream: _Stream, count: int, dim: int, rows: int, binary: bool) -> None:
    """Refuse a header whose rows cannot fit in what the file can hold, before anything is allocated for them.
    A binary row takes at least a 1-byte word, a space and 4 bytes a value; a text row a word, a space and a
    digit a value, and a newline (which the last row may lack)."""
    need = rows * (4 * dim + 2) if binary else rows * (2 * dim + 2) - 1
    room = stream.room()
    if room is None or need <= room:
        return
    which = "which take" if rows == count else f"and the first {rows} (limit) take"
    holds = (f"the file has {room:,} bytes after its header" if stream.compression is None else
             f"this {stream.compression} file of {stream.size:,} bytes expands to at most {room:,} bytes after its header")
    raise DataError(f"{stream.path}: header (line 1) declares {count:,} words of dimension {dim:,}, {which} at least "
                    f"{need:,} bytes in word2vec {'binary' if binary else 'text'}, but {holds}")


def _not_finite(path: Path, line: int) -> DataError:
    # NaN or inf would make every similarity NaN: refuse rather than rank garbage.
    return DataError(f"{path}: line {line} has a value that is not finite (NaN or infinity)")


def _read_text(stream: _Stream, count: int, dim: int, rows: int, words: _Words) -> np.ndarray:
    """The first `rows` of the `count` text rows the header declares; all `count` must be there unless `rows` is
    fewer (limit). Blank lines may follow the rows, as gensim ignores them."""
    vectors = _Vectors(stream.path, dim, rows, stream.size)
    _text_rows(stream, dim, rows, words, vectors, skip_blank=False)
    if len(words) < rows:
        raise DataError(f"{stream.path}: header (line 1) declares {count} words but the file has {len(words)} rows")
    if rows == count and not stream.only_left(_WHITESPACE):
        raise DataError(f"{stream.path}: header (line 1) declares {count} words but the file has more rows "
                        f"after line {stream.line_number}")
    return vectors.filled(rows)


def _read_glove(stream: _Stream, limit: int | None, words: _Words) -> np.ndarray:
    """GloVe's text, without the `V D` line: every non-blank line is a row, the first gives the dimension."""
    line = stream.line()
    while line is not None and not line.strip():
        line = stream.line()
    dim = 0 if line is None else line.rstrip().count(b" ")
    if dim < 1:
        raise DataError(f"{stream.path}: line {max(stream.line_number, 1)} must be a word and its values, "
                        f"got {(line or b'')[:60]!r}")
    vectors = _Vectors(stream.path, dim, limit, stream.size)
    _parse_text_row(stream, line, dim, words, vectors)
    _text_rows(stream, dim, sys.maxsize if limit is None else limit, words, vectors, skip_blank=True)
    return vectors.filled(len(words))


def _text_rows(stream: _Stream, dim: int, rows: int, words: _Words, vectors: _Vectors, skip_blank: bool) -> None:
    """Lines parsed into rows until there are `rows` or the file ends."""
    while len(words) < rows and (line := stream.line()) is not None:
        if not (skip_blank and not line.strip()):
            _parse_text_row(stream, line, dim, words, vectors)


def _parse_text_row(stream: _Stream, line: bytes, dim: int, words: _Words, vectors: _Vectors) -> None:
    """`word v1 ... vD` into the next row. The values are counted before the line is split, so that a hostile
    line never becomes millions of fields."""
    path, number = stream.path, stream.line_number
    if len(line) > MAX_TEXT_ROW_BYTES:
        raise DataError(f"{path}: line {number} is longer than {MAX_TEXT_ROW_BYTES:,} bytes, "
                        f"more than a word2vec text row can take")
    line = line.rstrip()
    values = line.count(b" ")
    if values != dim:
        raise DataError(f"{path}: line {number} has {values} values, expected {dim}")
    fields = line.split(b" ")
    row = vectors.row(len(words))
    try:
        row[:] = np.array(fields[1:], dtype=np.float32)
    except ValueError:
        raise DataError(f"{path}: line {number} has a value that is not a number") from None
    if not np.isfinite(row).all():
        raise _not_finite(path, number)
    words.add(fields[0], number)


def _read_binary(stream: _Stream, count: int, dim: int, rows: int, words: _Words) -> np.ndarray:
    """The first `rows` of the `count` binary rows: a word, a space, dim little-endian float32s, and the newline
    word2vec.c writes (gensim does not). The floats are read straight into the vectors."""
    vectors = _Vectors(stream.path, dim, rows, stream.size)
    for row in range(rows):
        number = row + 2  # header is line 1; a row is a line
        space = stream.find(b" ", MAX_WORD_BYTES + 1)
        if space < 0 and stream.pending() > MAX_WORD_BYTES:
            raise DataError(f"{stream.path}: row {row + 1} (line {number}) has no word: no space in its first "
                            f"{MAX_WORD_BYTES:,} bytes")
        word = stream.take(space + 1)[:-1] if space >= 0 else b""
        with memoryview(vectors.row(row)).cast("B") as floats:
            if space < 0 or stream.read_into(floats) < len(floats):
                raise DataError(f"{stream.path}: row {row + 1} (line {number}) is truncated; "
                                f"header declares {count} words of dimension {dim}")
        words.add(word.lstrip(b"\n"), number)
    if rows == count and not stream.only_left(b"\n"):
        raise DataError(f"{stream.path}: data after the {count} rows the header declares")
    array = vectors.filled(rows)
    if sys.byteorder != "little":
        array.byteswap(inplace=True)
    block = rows_per_write(array.shape[1])
    for start in range(0, rows, block):  # a block at a time: no [V, D] mask
        finite = np.isfinite(array[start:start + block]).all(axis=1)
        if not finite.all():
            raise _not_finite(stream.path, start + int(np.argmin(finite)) + 2)
    return array
