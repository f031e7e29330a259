"""Known Dostoevsky works on Project Gutenberg, and book-id validation."""

from __future__ import annotations

import re

from ingest.errors import BookIdError

# Gutenberg id -> title. The first five are the reference experiment's corpus.
CATALOGUE: dict[int, str] = {
    28054: "The Brothers Karamazov",
    2638: "The Idiot",
    8117: "The Possessed",
    600: "Notes from the Underground",
    40745: "Short Stories",
    2554: "Crime and Punishment",
    2197: "The Gambler",
    2302: "Poor Folk",
    36034: "White Nights and Other Stories",
    37536: "The House of the Dead",
}
DEFAULT_BOOKS: tuple[int, ...] = (28054, 2638, 8117, 600, 40745)

_DIGITS = re.compile(r"[0-9]+")


def parse_book_id(value: int | str) -> int:
    """Return `value` as a positive int, or raise BookIdError (ids end up in paths and URLs)."""
    if isinstance(value, bool):
        raise BookIdError(f"book id {value!r} is not allowed: a book id is a positive integer such as 2638")
    if isinstance(value, int):
        book_id = value
    else:
        text = str(value).strip()
        if not _DIGITS.fullmatch(text):
            raise BookIdError(f"book id {value!r} is not allowed: a book id is a positive integer such as 2638")
        book_id = int(text)
    if book_id <= 0:
        raise BookIdError(f"book id {value!r} is not allowed: a book id is a positive integer such as 2638")
    return book_id


def title_for(book_id: int) -> str | None:
    return CATALOGUE.get(book_id)
