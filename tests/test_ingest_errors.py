"""The ingest error family: part of jaxgram.errors, carrying URL and status like requests' errors."""

from __future__ import annotations

from ingest.errors import (
    BookIdError,
    BookNotFound,
    DownloadError,
    HostUnreachable,
    IngestError,
)
from jaxgram.errors import ConfigError, JaxgramError


def test_hierarchy_and_exit_codes():
    assert issubclass(IngestError, JaxgramError) and IngestError.exit_code == 1
    assert issubclass(DownloadError, IngestError) and issubclass(HostUnreachable, DownloadError)
    assert issubclass(BookNotFound, DownloadError)
    assert issubclass(BookIdError, ConfigError) and BookIdError.exit_code == 2


def test_download_error_carries_url_and_status():
    error = DownloadError("http://h/x: HTTP 503", url="http://h/x", status=503)
    assert (error.url, error.status, str(error)) == ("http://h/x", 503, "http://h/x: HTTP 503")


def test_book_not_found_names_id_and_urls():
    error = BookNotFound(12, ["http://h/a.txt", "http://h/b.txt"])
    assert str(error) == "book 12: not found at any known path; tried http://h/a.txt, http://h/b.txt"
    assert error.status == 404 and error.tried == ["http://h/a.txt", "http://h/b.txt"]
