"""Type checks for config values, driven by a dataclass's own annotations (plain Python, no JAX).

Config values arrive from TOML, JSON or the command line, so they are checked against the
field's annotation as `typing.get_type_hints` resolves it: `int`, `float`, `bool`, `str`,
`X | None` and other unions, `list[X]`, `tuple[X, ...]` and `tuple[X, Y]`. A bool is not
an int (`dim = true` is a mistake), an int is a float, and a list is a tuple (TOML has no
tuples). Wrong types raise ConfigError: "name=value has the wrong type: expected int or null".
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

from jaxgram.errors import ConfigError

_SEQUENCES = (list, tuple)
_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "booleans", dict: "tables"}


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Each dataclass field's annotation, resolved from strings to types."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def check_fields(obj: Any) -> None:
    """Raise ConfigError naming the first field of dataclass `obj` whose value has the wrong type."""
    for name, annotation in field_types(type(obj)).items():
        check_type(name, getattr(obj, name), annotation)


def check_type(name: str, value: Any, annotation: Any) -> None:
    if not type_ok(value, annotation):
        raise ConfigError(f"{name}={value!r} has the wrong type: expected {describe(annotation)}")


def type_ok(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    if _is_union(origin):
        return any(type_ok(value, arm) for arm in args)
    if origin in _SEQUENCES:
        return isinstance(value, _SEQUENCES) and _items_ok(value, origin, args)
    if not isinstance(annotation, type):
        raise TypeError(f"type_ok cannot check the annotation {annotation!r}")
    if isinstance(value, bool):  # bool subclasses int, but `true` for a count is a mistake
        return annotation is bool
    if annotation is float:
        return isinstance(value, (int, float))
    return isinstance(value, annotation)


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _items_ok(items, origin: type, args: tuple) -> bool:
    arms = _item_annotations(origin, args, len(items))
    return len(arms) == len(items) and all(type_ok(item, arm) for item, arm in zip(items, arms))


def _item_annotations(origin: type, args: tuple, count: int) -> list:
    """What each of `count` items must be: `tuple[X, Y]` fixes them one by one, `list[X]` all alike."""
    if not args:
        return [Any] * count
    if origin is tuple and args[-1] is not Ellipsis:
        return list(args)
    return [args[0]] * count


def coerce(value: Any, annotation: Any) -> Any:
    """`value`, already checked, in its field's own type: a float for an int, a tuple for a list."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(origin):
        return coerce(value, next(arm for arm in args if type_ok(value, arm)))
    if origin in _SEQUENCES:
        arms = _item_annotations(origin, args, len(value))
        return origin(coerce(item, arm) for item, arm in zip(value, arms))
    if annotation is float:
        return float(value)
    return value


def describe(annotation: Any) -> str:
    """The annotation in words, as error messages say it: "int or null", "a list of integers"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return "null"
    if _is_union(origin):
        return " or ".join(describe(arm) for arm in args)
    if origin in _SEQUENCES:
        return _describe_sequence(args, origin)
    return getattr(annotation, "__name__", repr(annotation))


def _describe_sequence(args: tuple, origin: type) -> str:
    if not args:
        return "a list"
    if origin is tuple and args[-1] is not Ellipsis:
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return "a list [" + ", ".join(describe(arm) for arm in args) + "]"
    return f"a list of {_plural(args[0])}"


def _plural(annotation: Any) -> str:
    if annotation in _PLURALS:
        return _PLURALS[annotation]
    text = describe(annotation)
    return "lists" + text.removeprefix("a list") if text.startswith("a list") else f"values of type {text}"
