"""jaxgram.validation: config values checked against their dataclass annotations."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from jaxgram.errors import ConfigError
from jaxgram.validation import (
    check_fields,
    check_type,
    coerce,
    describe,
    field_types,
    type_ok,
)


@dataclass(frozen=True)
class Example:
    count: int = 1
    rate: float = 0.5
    flag: bool = False
    name: str = "x"
    limit: int | None = None
    devices: int | str | None = None
    books: tuple[int, ...] = (1, 2)
    pair: tuple[str, str] = ("a", "b")
    words: list[str] | None = None


def test_field_types_resolve_string_annotations():
    types = field_types(Example)
    assert types["limit"] == int | None and types["books"] == tuple[int, ...] and types["rate"] is float


def test_defaults_pass_and_each_wrong_field_is_named():
    check_fields(Example())
    with pytest.raises(ConfigError, match=r"^count='3' has the wrong type: expected int$"):
        check_fields(Example(count="3"))
    with pytest.raises(ConfigError, match=r"^limit=2.5 has the wrong type: expected int or null$"):
        check_fields(Example(limit=2.5))
    with pytest.raises(ConfigError, match=r"^devices=\[1\] has the wrong type: expected int or str or null$"):
        check_fields(Example(devices=[1]))


@pytest.mark.parametrize("value, annotation", [
    (True, bool), (3, int), (3, float), (2.5, float), ("s", str), (None, int | None), (4, int | None),
    ("all", int | str | None), ([1, 2], tuple[int, ...]), ((1, 2), tuple[int, ...]), ([], list[int]),
    (["a", "b"], tuple[str, str]), ([["a", "b"]], list[tuple[str, str]]), (["a", 1], tuple[str, int]),
])
def test_accepted_values(value, annotation):
    assert type_ok(value, annotation)


@pytest.mark.parametrize("value, annotation", [
    (True, int), (False, float), (1, bool), (2.0, int), (3, str), (None, int), ("1", int | None),
    ([1, "2"], tuple[int, ...]), ("ab", tuple[str, ...]), (["a"], tuple[str, str]), (["a", "b", "c"], tuple[str, str]),
    ([True], list[int]), ([1, "a"], tuple[str, int]), ({"a": 1}, list[str]),
])
def test_refused_values(value, annotation):
    assert not type_ok(value, annotation)
    with pytest.raises(ConfigError, match="has the wrong type: expected"):
        check_type("key", value, annotation)


@pytest.mark.parametrize("annotation, words", [
    (int, "int"), (float | None, "float or null"), (tuple[int, ...], "a list of integers"),
    (list[str], "a list of strings"), (tuple[str, str], "a list of 2 strings"),
    (list[tuple[str, str]], "a list of lists of 2 strings"), (tuple[str, int], "a list [str, int]"),
    (list[dict], "a list of tables"),
])
def test_describe_says_the_annotation_in_words(annotation, words):
    assert describe(annotation) == words


def test_coerce_gives_the_fields_own_types():
    assert coerce(1, float) == 1.0 and isinstance(coerce(1, float), float)
    assert coerce([1, 2], tuple[int, ...]) == (1, 2)
    assert coerce([["a", "b"]], tuple[tuple[str, str], ...]) == (("a", "b"),)
    assert coerce(None, float | None) is None and isinstance(coerce(2, float | None), float)
    assert coerce(True, bool) is True and coerce(3, int | str | None) == 3


def test_an_annotation_it_cannot_check_is_a_programming_error():
    with pytest.raises(TypeError, match="cannot check"):
        type_ok({}, "int")


def test_importing_validation_does_not_load_jax():
    code = "import sys, jaxgram.validation, jaxgram.tables; assert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
