"""`jaxgram ingest`: parse arguments, call `ingest_books`, print the summary."""

from __future__ import annotations

import sys

from ingest.catalogue import CATALOGUE, DEFAULT_BOOKS
from ingest.download import DEFAULT_MIRROR, DownloadConfig
from ingest.pipeline import FORMATS, ingest_books


def register(subparsers) -> None:
    known = ", ".join(f"{book_id} {title}" for book_id, title in CATALOGUE.items())
    parser = subparsers.add_parser(
        "ingest",
        help="download and clean Project Gutenberg books into a corpus",
        description=f"Download, clean and tokenize Gutenberg books into OUT/corpus.txt. Known works: {known}.",
    )
    parser.add_argument("--books", nargs="+", metavar="ID", default=[str(b) for b in DEFAULT_BOOKS],
                        help="Gutenberg book ids (default: the five books of the reference experiment)")
    parser.add_argument("--mirror", metavar="URL|DIR", default=None,
                        help=f"server or local folder with the /cache/epub/ID/ layout (default: {DEFAULT_MIRROR})")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="text",
                        help="edition to use: plain text, or HTML extracted with BeautifulSoup (default: text)")
    parser.add_argument("--out", metavar="DIR", default="data", help="output folder (default: data)")
    parser.add_argument("--retries", type=int, metavar="N", default=DownloadConfig.retries,
                        help=f"extra attempts per request after a failure (default: {DownloadConfig.retries})")
    parser.add_argument("--deadline", type=float, metavar="SECONDS", default=DownloadConfig.deadline,
                        help="most seconds one download may take, however slowly the server sends "
                             f"(default: {DownloadConfig.deadline:g})")
    parser.set_defaults(func=run)


def run(args) -> int:
    report = ingest_books(args.books, mirror=args.mirror, out=args.out, fmt=args.fmt, progress=True,
                          config=DownloadConfig(retries=args.retries, deadline=args.deadline))
    print(report.summary())
    for book in report.books:
        for warning in book.warnings:
            print(f"jaxgram ingest: warning: {warning}", file=sys.stderr)
    for error in report.errors:
        print(f"jaxgram ingest: error: {error}", file=sys.stderr)
    return 1 if report.errors else 0
