"""Catalogue of known works and book-id validation."""

from __future__ import annotations

import pytest

from ingest.catalogue import CATALOGUE, DEFAULT_BOOKS, parse_book_id
from ingest.errors import BookIdError
from jaxgram.errors import ConfigError


def test_default_books_are_the_reference_five():
    assert DEFAULT_BOOKS == (28054, 2638, 8117, 600, 40745)
    assert set(DEFAULT_BOOKS) < set(CATALOGUE)
    assert {2554, 2197, 2302, 36034, 37536} < set(CATALOGUE)


@pytest.mark.parametrize("value, expected", [(600, 600), ("600", 600), (" 2638 ", 2638), ("0040745", 40745)])
def test_parse_valid_ids(value, expected):
    assert parse_book_id(value) == expected


@pytest.mark.parametrize("value", ["../etc", "-1", "12a", "0", "", "6 00", "1e3", "٣", -1, 0, True, 2.0, None])
def test_parse_refuses_everything_else(value):
    with pytest.raises(BookIdError, match="positive integer") as info:
        parse_book_id(value)
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2
    assert repr(value) in str(info.value)
