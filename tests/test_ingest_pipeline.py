"""ingest_books end to end: the five-book corpus, the raw cache, per-book failures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import fault_books
import pytest
from fault_server import FaultServer, Reply

from ingest import BookIdError, DownloadConfig, HostUnreachable, ingest_books, tokenize
from ingest.cache import RawCache
from jaxgram.errors import ConfigError
from jaxgram.fileio import sha256_file

FIVE_BOOKS = (28054, 2638, 8117, 600, 40745)
# Words that only front matter, chapter headings or the licence would put in a book's
# first or last sentence.
NOT_PROSE = {"gutenberg", "ebook", "license", "licence", "contents", "chapter", "translated", "produced",
             "transcriber", "illustration", "footnotes", "copyright", "http", "www", "publishers", "edition"}

AUTHOR_NAMES = {"dostoyevsky", "dostoevsky", "dostoievski", "garnett", "constance"}


def book_sentences(path) -> list[list[str]]:
    return [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_five_books_corpus_size_and_no_boilerplate(five_book_ingest, five_book_corpus):
    tokens = Counter(five_book_corpus.read_text(encoding="utf-8").split())
    assert 950_000 <= sum(tokens.values()) <= 1_020_000
    assert tokens["gutenberg"] == 0 and tokens["ebook"] == 0
    assert [book.id for book in five_book_ingest.books] == list(FIVE_BOOKS)
    assert five_book_ingest.errors == []


def test_corpus_is_line_sentence_format_in_book_order(five_book_ingest, five_book_corpus):
    corpus = five_book_corpus.read_text(encoding="utf-8")
    books = "".join(Path(book.clean_path).read_text(encoding="utf-8") for book in five_book_ingest.books)
    assert corpus == books
    for line in corpus.splitlines()[:2000]:
        assert line and line == " ".join(line.split()) and line.replace(" ", "").isalpha() and line.islower()


@pytest.mark.parametrize("index", range(len(FIVE_BOOKS)))
def test_first_and_last_sentences_are_prose(five_book_ingest, index):
    book = five_book_ingest.books[index]
    sentences = book_sentences(book.clean_path)
    assert len(sentences) == book.sentences
    for sentence in (sentences[0], sentences[-1]):
        assert 3 <= len(sentence) <= 120, sentence
        assert not NOT_PROSE & set(sentence), sentence
        assert not AUTHOR_NAMES & set(sentence), sentence
        title = tokenize(book.title)
        assert sentence[: len(title)] != title, sentence  # a title page starts with the title
        # Title pages and headings are mostly names; prose has function words.
        assert {"i", "a", "the", "for", "and", "of", "to", "as", "at", "it", "my", "was"} & set(sentence), sentence


def test_manifest_records_every_book(five_book_ingest):
    manifest = json.loads(five_book_ingest.manifest_path.read_text(encoding="utf-8"))
    assert [entry["id"] for entry in manifest["books"]] == list(FIVE_BOOKS)
    assert manifest["tokens"] == sum(len(line.split()) for line in five_book_ingest.corpus_path.open())
    for entry, book in zip(manifest["books"], five_book_ingest.books):
        raw = Path(entry["raw_path"])
        assert sha256_file(raw) == entry["sha256"] and raw.stat().st_size == entry["bytes"]
        assert entry["source_url"].endswith(f"/cache/epub/{book.id}/pg{book.id}.txt")
        assert entry["title"] and entry["lines_removed"] > 0
        assert entry["tokens"] == sum(map(len, book_sentences(entry["clean_path"])))
        assert entry["sentences"] == len(book_sentences(entry["clean_path"]))


def test_warm_cache_makes_zero_requests(mirror_server, tmp_path):
    ingest_books([600], mirror=mirror_server.url, out=tmp_path, progress=False)
    before = len(mirror_server.requests)
    report = ingest_books([600], mirror=mirror_server.url, out=tmp_path, progress=False)
    assert len(mirror_server.requests) == before
    assert report.books[0].from_cache and report.books[0].tokens > 40_000


def test_cached_file_with_wrong_hash_is_fetched_again(mirror_server, tmp_path):
    first = ingest_books([600], mirror=mirror_server.url, out=tmp_path, progress=False).books[0]
    raw = Path(first.raw_path)
    raw.write_bytes(raw.read_bytes()[:1000])  # damaged behind the cache's back
    before = len(mirror_server.requests)
    second = ingest_books([600], mirror=mirror_server.url, out=tmp_path, progress=False).books[0]
    assert mirror_server.requests[before:] == ["/cache/epub/600/pg600.txt"]
    assert not second.from_cache and sha256_file(raw) == first.sha256 and second.tokens == first.tokens


def test_html_route_has_its_own_cache_entry(mirror_server, tmp_path):
    text = ingest_books([600], mirror=mirror_server.url, out=tmp_path, progress=False).books[0]
    html = ingest_books([600], mirror=mirror_server.url, out=tmp_path, fmt="html", progress=False).books[0]
    assert html.source_url.endswith("/cache/epub/600/pg600-images.html") and not html.from_cache
    assert html.sha256 != text.sha256 and abs(html.tokens - text.tokens) < 0.02 * text.tokens


def test_local_folder_mirror_matches_http_mirror(gutenberg_dir, mirror_server, tmp_path):
    local = ingest_books([40745], mirror=gutenberg_dir, out=tmp_path / "local", progress=False)
    http = ingest_books([40745], mirror=mirror_server.url, out=tmp_path / "http", progress=False)
    assert local.corpus_path.read_bytes() == http.corpus_path.read_bytes()
    assert local.books[0].sha256 == http.books[0].sha256


def test_one_missing_book_does_not_stop_the_others(mirror_server, tmp_path):
    report = ingest_books([600, 999999], mirror=mirror_server.url, out=tmp_path, progress=False)
    assert [book.id for book in report.books] == [600]
    assert [error.id for error in report.errors] == [999999]
    assert "book 999999" in str(report.errors[0]) and "/cache/epub/999999/pg999999.txt" in str(report.errors[0])
    manifest = json.loads(report.manifest_path.read_text(encoding="utf-8"))
    assert manifest["errors"][0]["id"] == 999999 and report.corpus_path.stat().st_size > 0


@pytest.mark.parametrize("bad", ["../etc", "-1", "12a", "0", "", -5, 2.5])
def test_bad_book_ids_refused_before_any_request(mirror_server, tmp_path, bad):
    before = len(mirror_server.requests)
    with pytest.raises(BookIdError, match="positive integer"):
        ingest_books([600, bad], mirror=mirror_server.url, out=tmp_path / "out", progress=False)
    assert len(mirror_server.requests) == before
    assert not (tmp_path / "out").exists()


def test_unknown_format_refused(tmp_path):
    with pytest.raises(ConfigError, match="format"):
        ingest_books([600], mirror=str(tmp_path), out=tmp_path, fmt="pdf", progress=False)


def test_truncated_download_is_never_cached(tmp_path):
    body = ("A sentence of the book that goes on for a while and then stops. " * 50).encode()
    with FaultServer() as server:
        server.script("/cache/epub/7/pg7.txt", Reply(200, body[:500], content_length=len(body)))
        config = DownloadConfig(retries=1, backoff_base=0.01, read_timeout=1.0)
        with pytest.raises(Exception) as info:
            ingest_books([7], mirror=server.url, out=tmp_path, progress=False, config=config)
    assert "book 7" in str(info.value) or "pg7.txt" in str(info.value)
    assert not list((tmp_path / "raw").rglob("pg7.txt"))
    assert not (tmp_path / "corpus.txt").exists()


def test_unreachable_host_stops_the_run(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HostUnreachable, match="--mirror"):
        ingest_books([600, 2638], mirror=f"http://127.0.0.1:{port}", out=tmp_path, progress=False,
                     config=DownloadConfig(retries=1, backoff_base=0.01))


def test_given_session_is_the_one_used(mirror_server, tmp_path):
    import requests

    sent = []

    class CountingAdapter(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            sent.append(request.url)
            return super().send(request, **kwargs)

    session = requests.Session()
    session.mount("http://", CountingAdapter())
    ingest_books([600], mirror=mirror_server.url, out=tmp_path, progress=False, session=session)
    assert sent == [f"{mirror_server.url}/cache/epub/600/pg600.txt"]


def test_a_book_too_small_or_without_text_is_refused_and_not_cached(tmp_path):
    """One paragraph in a Gutenberg wrapper is under min_bytes; a licence alone has no book text."""
    mirror = tmp_path / "mirror"
    bodies = {31: fault_books.book(31, fault_books.prose(31, paragraphs=1)).encode(),
              32: fault_books.LICENCE_ONLY.encode(), 33: fault_books.book(33, fault_books.prose(33)).encode()}
    paths = {book_id: mirror / fault_books.text_path(book_id) for book_id in bodies}
    for book_id, body in bodies.items():
        paths[book_id].parent.mkdir(parents=True)
        paths[book_id].write_bytes(body)
    report = ingest_books([31, 32, 33], mirror=mirror, out=tmp_path / "out", progress=False)
    assert [book.id for book in report.books] == [33]
    small, licence = (error.message for error in report.errors)
    assert small == (f"book 31: {paths[31]} is not a Gutenberg plain text: "
                     f"it is {len(bodies[31]):,} bytes, under the 2,048-byte minimum for a book")
    assert licence.startswith(f"book 32: no book text in {paths[32]}")
    assert [RawCache(tmp_path / "out" / "raw").get(book_id, "text") is None for book_id in bodies] == [True, True, False]
