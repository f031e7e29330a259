"""Errors raised by ingest, all part of the `jaxgram.errors` family."""

from __future__ import annotations

from jaxgram.errors import ConfigError, JaxgramError


class IngestError(JaxgramError):
    """Ingest could not produce a book: the message names the book and the reason."""


class BookIdError(ConfigError):
    """A book id that is not a positive integer; refused before any request."""


class DownloadError(IngestError):
    """An HTTP fetch failed; carries the URL and status (None for network errors), like requests' errors."""

    def __init__(self, message: str, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class BookNotFound(DownloadError):
    """Every known path for a book answered 404 (or is missing from the local folder)."""

    def __init__(self, book_id: int, tried: list[str]):
        super().__init__(
            f"book {book_id}: not found at any known path; tried " + ", ".join(tried),
            url=tried[-1] if tried else None,
            status=404,
        )
        self.book_id = book_id
        self.tried = list(tried)


class HostUnreachable(DownloadError):
    """The source host cannot be reached at all; fatal for the whole run."""


class NotABook(IngestError):
    """A body that is not the book asked for (an error page, binary data, no book text): never cached."""
