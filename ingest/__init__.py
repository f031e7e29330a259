"""ingest: download, clean and tokenize Project Gutenberg books into a LineSentence corpus."""

from ingest.catalogue import CATALOGUE, DEFAULT_BOOKS, parse_book_id
from ingest.download import DownloadConfig
from ingest.errors import (
    BookIdError,
    BookNotFound,
    DownloadError,
    HostUnreachable,
    IngestError,
    NotABook,
)
from ingest.pipeline import BookError, BookResult, IngestReport, ingest_books
from ingest.tokenizer import split_sentences, tokenize

__all__ = [
    "CATALOGUE", "DEFAULT_BOOKS", "BookError", "BookIdError", "BookNotFound", "BookResult", "DownloadConfig",
    "DownloadError", "HostUnreachable", "IngestError", "IngestReport", "NotABook", "ingest_books", "parse_book_id",
    "split_sentences", "tokenize",
]
