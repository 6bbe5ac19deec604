"""A request body means one thing: exact decimals, no NaN, no object that repeats a key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderpipe_ingest.request_json import DuplicateKeyError, parse_request_json


def test_numbers_with_a_fraction_are_exact_decimals_and_integers_stay_integers() -> None:
    assert parse_request_json('{"a": 0.1, "b": 2, "c": 1e2}') == {
        "a": Decimal("0.1"),
        "b": 2,
        "c": Decimal("1E+2"),
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(constant: str) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_request_json(f'{{"unit_price": {constant}}}')


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"currency": "EUR", "currency": "USD"}', "currency"),
        ('{"items": [{"sku": "A", "quantity": 1, "sku": "B"}]}', "items.0.sku"),
        ('{"shipping_address": {"city": "Paris", "country": "FR", "city": "Lyon"}}', "shipping_address.city"),
        ('[{"customer_id": "c"}, {"customer_id": "c", "currency": "EUR", "currency": "EUR"}]', "1.currency"),
        ('{"a": 1, "a": 1}', "a"),  # even the same value twice: another parser may keep neither
    ],
)
def test_a_repeated_key_is_refused_with_the_path_to_it(text: str, field: str) -> None:
    # Given a body in which one object repeats a key (at the top, in a line item, in a batch)
    # When it is parsed, Then it is refused, naming where
    with pytest.raises(DuplicateKeyError) as refused:
        parse_request_json(text)
    assert refused.value.field == field


def test_the_same_key_in_different_objects_is_not_a_repeat() -> None:
    body = '[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]'
    assert parse_request_json(body) == [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}]


def test_keys_that_differ_only_once_decoded_are_a_repeat() -> None:
    # "\u0061" is "a": two parsers that decode escapes see the same key twice
    with pytest.raises(DuplicateKeyError):
        parse_request_json('{"a": 1, "\\u0061": 2}')
