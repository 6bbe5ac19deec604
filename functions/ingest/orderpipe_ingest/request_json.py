"""Parsing a request body's JSON so that it means one thing to every parser.

- Numbers with a fraction or an exponent become exact Decimals (never binary floats).
- NaN, Infinity and -Infinity (which Python's json takes, and JSON does not have) are refused.
- An object that repeats a key is refused: parsers disagree on which value wins (Python's json
  keeps the last, others the first or refuse), so such an order could mean two things.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any


class DuplicateKeyError(ValueError):
    """An object repeats a key; `path` leads to it (`items.0.sku`, `3.currency` in a batch)."""

    def __init__(self, path: tuple[str | int, ...]) -> None:
        self.path = path
        super().__init__(f"the key {path[-1]!r} appears twice in one object")

    @property
    def field(self) -> str:
        return ".".join(str(part) for part in self.path)


class _ObjectWithRepeatedKey(dict[str, Any]):
    repeated: str = ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_request_json(text: str) -> Any:
    """The JSON value of `text`; ValueError for invalid JSON, DuplicateKeyError for a repeated key,
    RecursionError when nested too deeply for the parser."""
    repeated = False

    def build_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        built = dict(pairs)
        if len(built) == len(pairs):  # the common case costs one dict() and a comparison
            return built
        repeated = True
        marked = _ObjectWithRepeatedKey(built)
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                marked.repeated = key
                break
            seen.add(key)
        return marked

    value = json.loads(
        text, parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=build_object
    )
    if repeated:
        raise DuplicateKeyError(next(_paths_to_repeated_keys(value, ())))
    return value


def _paths_to_repeated_keys(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, _ObjectWithRepeatedKey):
        yield (*path, value.repeated)
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths_to_repeated_keys(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths_to_repeated_keys(item, (*path, index))
