"""`ingest_books`: download (or reuse cached) raw books, clean, tokenize, write the corpus."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from ingest.cache import RawCache
from ingest.catalogue import DEFAULT_BOOKS, parse_book_id, title_for
from ingest.clean import CleanText, clean_text, decode_text
from ingest.download import DownloadConfig, Source, fetch_book, open_source
from ingest.errors import HostUnreachable, IngestError, NotABook
from ingest.tokenizer import format_line_sentences, line_sentences
from ingest.verify import book_refusal
from jaxgram.errors import ConfigError
from jaxgram.fileio import atomic_open, atomic_write_json, atomic_write_text
from jaxgram.tables import table_lines

FORMATS = ("text", "html")
_KINDS = {"text": "plain text", "html": "HTML edition"}
_TITLE_LINE = re.compile(r"^\s*Title:\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class BookResult:
    id: int
    title: str
    source_url: str
    raw_path: str
    sha256: str
    bytes: int
    tokens: int
    sentences: int
    lines_removed: int
    clean_path: str
    from_cache: bool
    warnings: tuple[str, ...] = ()  # problems that did not stop the book, e.g. a file that is not UTF-8


@dataclass(frozen=True)
class BookError:
    id: int | str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class IngestReport:
    corpus_path: Path
    manifest_path: Path
    fmt: str
    source: str
    books: list[BookResult] = field(default_factory=list)
    errors: list[BookError] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(book.tokens for book in self.books)

    @property
    def sentences(self) -> int:
        return sum(book.sentences for book in self.books)

    def summary(self) -> str:
        """Per-book table, totals and the corpus path, for the terminal."""
        header = ("id", "title", "tokens", "sentences", "removed", "raw bytes", "source")
        rows = [
            (str(b.id), b.title[:34], f"{b.tokens:,}", f"{b.sentences:,}", f"{b.lines_removed:,}", f"{b.bytes:,}",
             "cache" if b.from_cache else "fetched")
            for b in self.books
        ]
        rows += [(str(e.id), "FAILED", "-", "-", "-", "-", "-") for e in self.errors]
        rows.append(("total", f"{len(self.books)} book(s)", f"{self.tokens:,}", f"{self.sentences:,}", "", "", ""))
        table = table_lines(header, rows, "<<>>>><", rule="-")
        return "\n".join(table + [f"corpus: {self.corpus_path}", f"manifest: {self.manifest_path}"])


def encoding_warning(book_id: int, path: Path, body: bytes) -> str | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"book {book_id}: {path} is not valid UTF-8 (first at byte {exc.start}); "
                "bytes that are not UTF-8 were read as cp1252")
    return None


def clean_raw(body: bytes, fmt: str) -> CleanText:
    if fmt == "html":
        from ingest.html import clean_html  # bs4 only when the HTML route is used

        return clean_html(body)
    return clean_text(decode_text(body))


def _title(book_id: int, body: bytes) -> str:
    known = title_for(book_id)
    if known:
        return known
    match = _TITLE_LINE.search(decode_text(body[:20000]))
    return match.group(1) if match else f"Project Gutenberg #{book_id}"


def _refused(book_id: int, fmt: str, source: str, reason: str) -> NotABook:
    return NotABook(f"book {book_id}: {source} is not a Gutenberg {_KINDS[fmt]}: {reason}")


def _accept(book_id: int, fmt: str, source: str, body: bytes, min_bytes: int) -> tuple[CleanText, list]:
    """The cleaned book and its sentences, or NotABook naming why `body` (from `source`) is not book `book_id`."""
    if not body.strip():
        raise NotABook(f"book {book_id}: {source} is empty")
    reason = book_refusal(book_id, fmt, body)
    if reason is not None:
        raise _refused(book_id, fmt, source, reason)
    cleaned = clean_raw(body, fmt)
    sentences = list(line_sentences(cleaned.text))
    if not sentences:
        raise NotABook(f"book {book_id}: no book text in {source}: cleaning removed everything "
                       "(only Project Gutenberg header, licence or front matter?)")
    # After cleaning, so a licence-only file is reported as having no book text.
    if len(body) < min_bytes:
        raise _refused(book_id, fmt, source, f"it is {len(body):,} bytes, under the {min_bytes:,}-byte minimum for a book")
    return cleaned, sentences


def _from_cache(book_id: int, fmt: str, cache: RawCache, min_bytes: int, warnings: list[str]):
    """(cached entry, body, cleaned, sentences) of a cached copy that still passes the checks, else None.

    A copy that fails them (cached by a version without the checks, or replaced together with
    its hash) is not trusted: the book is fetched again, and a good copy replaces it.
    """
    hit = cache.get(book_id, fmt)
    if hit is None:
        return None
    cached, body = hit
    try:
        return (cached, body, *_accept(book_id, fmt, str(cached.path), body, min_bytes))
    except NotABook as refusal:
        warnings.append(f"{refusal}; fetched again")
        return None


def _ingest_one(book_id: int, fmt: str, source: Source, cache: RawCache, clean_dir: Path,
                config: DownloadConfig) -> BookResult:
    warnings: list[str] = []
    hit = _from_cache(book_id, fmt, cache, config.min_bytes, warnings)
    if hit is not None:
        cached, body, cleaned, sentences = hit
    else:
        path, url, body = fetch_book(source, book_id, fmt)
        cleaned, sentences = _accept(book_id, fmt, url, body, config.min_bytes)  # refused: nothing cached
        cached = cache.put(book_id, fmt, Path(path).name, url, body)
    warning = encoding_warning(book_id, cached.path, body) if fmt == "text" else None
    clean_path = clean_dir / f"{book_id}.txt"
    atomic_write_text(clean_path, format_line_sentences(sentences))
    return BookResult(
        id=book_id, title=_title(book_id, body), source_url=cached.source_url, raw_path=str(cached.path),
        sha256=cached.sha256, bytes=cached.bytes, tokens=sum(map(len, sentences)), sentences=len(sentences),
        lines_removed=cleaned.lines_removed, clean_path=str(clean_path), from_cache=hit is not None,
        warnings=tuple(warnings) + ((warning,) if warning else ()),
    )


def ingest_books(
    books: Sequence[int | str] = DEFAULT_BOOKS,
    mirror: str | Path | None = None,
    out: str | Path = "data",
    fmt: str = "text",
    progress: bool = True,
    session=None,
    config: DownloadConfig | None = None,
) -> IngestReport:
    """Ingest `books` into `out`: raw/ (cache), clean/{id}.txt, corpus.txt, manifest.json.

    clean/{id}.txt and corpus.txt (the books in the order given) are LineSentence files.
    The raw cache is keyed by book id and format, not by mirror: every mirror serves the
    same files. `lines_removed` counts non-blank lines dropped by cleaning (for the HTML
    route, lines of the text extracted from the markup).

    A book that fails is reported in `errors` while the others go on; an unreachable
    host stops the run (every book would fail the same way).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is not allowed: use 'text' or 'html'")
    book_ids = list(dict.fromkeys(parse_book_id(book) for book in books))  # all refused before any request
    if not book_ids:
        raise ConfigError("books is empty: give at least one Gutenberg book id")
    out = Path(out)
    config = config or DownloadConfig()
    source = open_source(mirror, config, session)
    cache = RawCache(out / "raw")
    report = IngestReport(corpus_path=out / "corpus.txt", manifest_path=out / "manifest.json", fmt=fmt,
                          source=source.description)
    with tqdm(total=len(book_ids), desc="ingest", unit="book", file=sys.stderr, disable=not progress) as bar:
        for book_id in book_ids:
            bar.set_postfix_str(f"book {book_id}")
            try:
                report.books.append(_ingest_one(book_id, fmt, source, cache, out / "clean", config))
            except HostUnreachable:
                raise  # every other book would fail the same way
            except IngestError as exc:
                report.errors.append(BookError(book_id, str(exc)))
            bar.update()
    if not report.books:
        raise IngestError("no book could be ingested: " + "; ".join(map(str, report.errors)))
    with atomic_open(report.corpus_path, "wb") as corpus:
        for book in report.books:
            corpus.write(Path(book.clean_path).read_bytes())
    atomic_write_json(report.manifest_path, {
        "format": fmt,
        "source": report.source,
        "corpus": report.corpus_path.name,
        "tokens": report.tokens,
        "sentences": report.sentences,
        "books": [{k: v for k, v in asdict(book).items() if k != "from_cache"} for book in report.books],
        "errors": [{"id": error.id, "message": error.message} for error in report.errors],
    })
    return report
