"""Does a downloaded body look like the Gutenberg book asked for? Checked before it is cleaned or cached.

A server under load, a proxy or a captive portal can answer 200 with something else: an
HTML "Access denied" page, gzip bytes, garbage. Cleaning would turn that into a few
thousand junk tokens and the cache would keep it, so `book_refusal` names why a body is
not the book, checking in this order:

1. binary: a known archive signature (gzip, zip, PDF); NUL bytes on the text route (plain
   text never has them; the HTML route's parser copes with a stray one, as pages can hold
   one); or more than a tenth of the bytes not UTF-8 (a cp1252 book has well under 1%);
2. markup on the text route: a page that starts like HTML or XML, or whose bytes are more
   than a tenth tags (the five real books: at most 0.001%). The HTML route expects markup;
3. another text: a catalogue book must hold its title or a START/END marker; a book the
   catalogue does not know must at least mention Project Gutenberg (its header, markers
   and licence all do, while an error page from a proxy does not).

The pipeline adds the checks that need the cleaned text: some book text, and a plausible size.
"""

from __future__ import annotations

import re

from ingest.catalogue import title_for
from ingest.clean import decode_text, has_gutenberg_marker

_SIGNATURES = {b"\x1f\x8b": "gzip-compressed data", b"PK\x03\x04": "a zip archive", b"%PDF": "a PDF file"}
MAX_NOT_UTF8_SHARE = 0.10
_MARKUP_STARTS = (b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")
_TAG = re.compile(rb"<[!/?]?[A-Za-z][^<>]{0,1000}>")
MAX_TAG_SHARE = 0.10
_MENTION = re.compile(r"project\s+gutenberg", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"


def binary_reason(body: bytes, fmt: str) -> str | None:
    for signature, kind in _SIGNATURES.items():
        if body.startswith(signature):
            return f"it is {kind} (it starts with bytes {signature.hex(' ')})"
    nul = body.find(b"\x00")
    if fmt == "text" and nul >= 0:
        return f"it holds NUL bytes (the first at byte {nul:,}): binary data"
    # Dropping what is not UTF-8 and encoding the rest again counts the bytes that were valid.
    not_utf8 = len(body) - len(body.decode("utf-8", errors="ignore").encode("utf-8"))
    if not_utf8 > MAX_NOT_UTF8_SHARE * len(body):
        return (f"{not_utf8 / len(body):.0%} of its bytes are not UTF-8 (at most {MAX_NOT_UTF8_SHARE:.0%} may be): "
                "binary data")
    return None


def markup_reason(body: bytes) -> str | None:
    """Why a body served as plain text is really an HTML or XML page, or None."""
    head = body[:256].removeprefix(_BOM).lstrip().lower()
    start = next((prefix for prefix in _MARKUP_STARTS if head.startswith(prefix)), None)
    if start is not None:
        return f"it is an HTML or XML page (it starts with {start.decode()})"
    tags = sum(len(tag) for tag in _TAG.findall(body))
    if tags > MAX_TAG_SHARE * len(body):
        return (f"it is mostly HTML markup ({tags / len(body):.0%} of its bytes are tags; "
                f"at most {MAX_TAG_SHARE:.0%} may be)")
    return None


def _holds_title(title: str, text: str) -> bool:
    # Case and line breaks vary: "THE POSSESSED (The Devils)", an HTML <title> over two lines.
    pattern = r"\s+".join(map(re.escape, title.split()))
    return re.search(pattern, text, re.IGNORECASE) is not None


def identity_reason(book_id: int, body: bytes) -> str | None:
    """Why `body` is not recognisably book `book_id` from Project Gutenberg, or None."""
    text = decode_text(body)
    if has_gutenberg_marker(text):
        return None
    title = title_for(book_id)
    if title is None:
        if _MENTION.search(text):
            return None
        return "it never mentions Project Gutenberg (a Gutenberg book does, in its header, markers or licence)"
    if _holds_title(title, text):
        return None
    return f"neither its title {title!r} nor a Project Gutenberg START or END marker is in it"


def book_refusal(book_id: int, fmt: str, body: bytes) -> str | None:
    """Why `body` is not book `book_id` in format `fmt` ("text" or "html"), or None if it looks like it."""
    return (binary_reason(body, fmt)
            or (markup_reason(body) if fmt == "text" else None)
            or identity_reason(book_id, body))
