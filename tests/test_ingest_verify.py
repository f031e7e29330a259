"""The check a downloaded body passes before it is cleaned or cached: real books in, look-alikes out."""

from __future__ import annotations

import gzip
import random

import pytest
from fault_books import ACCESS_DENIED, book, prose

from ingest.catalogue import DEFAULT_BOOKS
from ingest.verify import book_refusal

GOOD = book(31, prose(31)).encode()
NO_MARKER = prose(600, paragraphs=30).encode()  # prose alone: no title, no marker, no Gutenberg
_rng = random.Random(28)
HIGH_BYTES = bytes(_rng.randrange(1, 256) for _ in range(8192))  # random, but without NUL


@pytest.mark.parametrize("fmt, name", [("text", "pg{id}.txt"), ("html", "pg{id}-images.html")])
@pytest.mark.parametrize("book_id", DEFAULT_BOOKS)
def test_every_real_book_passes_in_both_formats(gutenberg_dir, book_id, fmt, name):
    body = (gutenberg_dir / "cache" / "epub" / str(book_id) / name.format(id=book_id)).read_bytes()
    assert book_refusal(book_id, fmt, body) is None


def test_a_synthetic_book_passes_in_utf8_and_in_cp1252():
    accented = book(31, prose(31) + "\n\nThe café owner said the naïve visitor don’t know the river at all.")
    assert book_refusal(31, "text", accented.encode("utf-8")) is None
    assert book_refusal(31, "text", accented.encode("cp1252")) is None


BINARY = [
    (gzip.compress(GOOD), "it is gzip-compressed data (it starts with bytes 1f 8b)"),
    (b"PK\x03\x04" + GOOD, "it is a zip archive"),
    (b"%PDF-1.7\n" + GOOD, "it is a PDF file"),
    (GOOD[:500] + b"\x00" + GOOD[500:], "it holds NUL bytes (the first at byte 500): binary data"),
    # High bytes and no NUL: only the share that is not UTF-8 gives them away.
    (HIGH_BYTES, "of its bytes are not UTF-8 (at most 10% may be): binary data"),
]


@pytest.mark.parametrize("body, reason", BINARY, ids=["gzip", "zip", "pdf", "nul", "not-utf8"])
def test_binary_bodies_are_refused_with_what_they_are(body, reason):
    assert reason in book_refusal(31, "text", body)


def test_a_stray_nul_byte_is_left_to_the_html_parser_but_gzip_is_not():
    page = b"<html><title>The Project Gutenberg eBook of T</title><p>" + GOOD + b"\x00</p></html>"
    assert book_refusal(31, "html", page) is None
    assert "gzip" in book_refusal(31, "html", gzip.compress(page))


@pytest.mark.parametrize("start", [b"<!DOCTYPE html>", b"\xef\xbb\xbf\n  <html lang='en'>", b"<?xml version='1.0'?>"])
def test_a_page_served_as_plain_text_is_refused_by_how_it_starts(start):
    reason = book_refusal(31, "text", start + b"\n" + GOOD)
    assert reason.startswith("it is an HTML or XML page (it starts with <")


def test_a_page_without_a_doctype_is_refused_by_its_share_of_tags():
    tags = b"".join(b"<div class='row'><span class='cell'>" + line + b"</span></div>\n" for line in GOOD.splitlines())
    assert "it is mostly HTML markup (" in book_refusal(31, "text", tags)
    assert book_refusal(31, "html", tags) is None  # the HTML edition is markup


def test_an_error_page_is_refused_on_both_routes():
    page = ACCESS_DENIED.encode()
    assert "HTML or XML page" in book_refusal(600, "text", page)
    assert book_refusal(600, "html", page) == (
        "neither its title 'Notes from the Underground' nor a Project Gutenberg START or END marker is in it")
    assert "never mentions Project Gutenberg" in book_refusal(31, "html", page)


def test_a_catalogue_book_needs_its_title_or_a_marker():
    assert "'Notes from the Underground'" in book_refusal(600, "text", NO_MARKER)
    assert book_refusal(600, "text", b"NOTES FROM THE\nUNDERGROUND\n\n" + NO_MARKER) is None
    assert book_refusal(600, "text", book(600, prose(600), title="Another Title").encode()) is None  # its markers


def test_a_book_outside_the_catalogue_needs_a_gutenberg_mention():
    assert "never mentions Project Gutenberg" in book_refusal(31, "text", NO_MARKER)
    assert book_refusal(31, "text", NO_MARKER + b"\n\nEnd of the Project Gutenberg EBook of Nothing\n") is None
