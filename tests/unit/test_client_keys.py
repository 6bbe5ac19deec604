"""The client's Idempotency-Keys and bodies: the same content always makes the same request."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orderpipe_client import OrderpipeClient, plan_batches
from orderpipe_client.keys import (
    InvalidIdempotencyKeyError,
    batch_key,
    canonical_json,
    order_key,
)
from orderpipe_client.models import LineItem, OrderRequest


def sample(**changes: Any) -> dict[str, Any]:
    return {
        "customer_id": "cust-1",
        "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": Decimal("19.99")}],
        **changes,
    }


def key_of(order: Any, namespace: str = "") -> str:
    return order_key(order, body=canonical_json(order), namespace=namespace)


def test_canonical_json_ignores_key_order_and_keeps_decimals_exact() -> None:
    # Given the same order written with its keys in two orders, and a price no binary float holds
    first = {
        "currency": "EUR",
        "customer_id": "c",
        "items": [{"unit_price": Decimal("0.10"), "sku": "S", "quantity": 1}],
    }
    second = {
        "items": [{"quantity": 1, "sku": "S", "unit_price": Decimal("0.10")}],
        "customer_id": "c",
        "currency": "EUR",
    }
    # When both are made canonical
    # Then they are the same text, compact, with the decimal exactly as given
    assert canonical_json(first) == canonical_json(second)
    assert (
        canonical_json(first)
        == '{"currency":"EUR","customer_id":"c","items":[{"quantity":1,"sku":"S","unit_price":0.10}]}'
    )


def test_canonical_json_is_ascii_and_refuses_what_json_cannot_say() -> None:
    # Given text outside ASCII (a lone surrogate included) and non-finite numbers
    # Then the text is escaped into ASCII, and NaN/Infinity are refused rather than sent
    assert canonical_json({"name": "Zoë \ud800"}) == '{"name":"Zo\\u00eb \\ud800"}'
    for bad in (float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity")):
        with pytest.raises(ValueError, match="not a JSON number"):
            canonical_json({"price": bad})


def test_the_same_content_gets_the_same_key_and_other_content_another() -> None:
    # Given an order without a client_reference
    # Then its key depends on its content only, and is a key the server takes
    key = key_of(sample())
    assert key == key_of(sample())
    assert key != key_of(sample(currency="USD"))
    assert 1 <= len(key) <= 255 and key.isprintable() and key.isascii()


def test_a_client_reference_keys_the_order_with_its_customer() -> None:
    # Given orders with a client_reference
    # When their content changes but not their reference and customer
    # Then the key stays (the server refuses the same key with another body, a 409, rather than store both)
    assert key_of(sample(client_reference="po-1")) == key_of(sample(client_reference="po-1", currency="USD"))
    assert key_of(sample(client_reference="po-1")) != key_of(sample(client_reference="po-2"))
    assert key_of(sample(client_reference="po-1")) != key_of(
        sample(client_reference="po-1", customer_id="cust-2")
    )


def test_a_namespace_separates_the_keys_of_two_producers() -> None:
    assert key_of(sample(), namespace="shop-a") != key_of(sample(), namespace="shop-b")
    assert key_of(sample(), namespace="shop-a") == key_of(sample(), namespace="shop-a")


@pytest.mark.parametrize("bad", ["", " padded", "x" * 256, "tab\tinside", "line\nbreak"])
def test_explicit_keys_the_server_would_refuse_are_refused_before_sending(bad: str) -> None:
    with pytest.raises(InvalidIdempotencyKeyError):
        order_key(sample(), body="{}", explicit=bad)


def test_an_explicit_key_is_used_as_given() -> None:
    assert order_key(sample(), body="{}", explicit="my-key-1") == "my-key-1"


def test_a_batch_key_depends_on_its_orders_and_their_order() -> None:
    # Given three orders' keys and bodies
    bodies = [canonical_json(sample(customer_id=f"c-{n}")) for n in range(3)]
    keys = [f"k{n}" for n in range(3)]
    # Then the same batch has the same key; another order, subset or body makes another key
    assert batch_key(keys, bodies) == batch_key(list(keys), list(bodies))
    assert batch_key(keys, bodies) != batch_key(keys[::-1], bodies[::-1])
    assert batch_key(keys, bodies) != batch_key(keys[:2], bodies[:2])
    assert batch_key(keys, bodies) != batch_key(keys, [*bodies[:2], canonical_json(sample(currency="USD"))])


def test_a_pydantic_order_and_the_same_dict_make_the_same_request() -> None:
    # Given one order as the client's model and as the JSON a file holds (price as a string)
    model = OrderRequest(
        customer_id="cust-1",
        currency="EUR",
        items=[LineItem(sku="SKU-1", quantity=2, unit_price=Decimal("19.99"))],
    )
    as_json = {
        "customer_id": "cust-1",
        "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "19.99"}],
    }
    client = OrderpipeClient("http://127.0.0.1:9")
    # Then both are prepared into the same body and key
    assert client.prepare(model) == client.prepare(as_json)
    client.close()


def test_batches_are_consecutive_and_bounded_by_count_and_bytes() -> None:
    # Given 250 prepared orders of the same size
    client = OrderpipeClient("http://127.0.0.1:9")
    orders = [client.prepare({"customer_id": f"c-{n:03d}", "pad": "x" * 970}, index=n) for n in range(250)]
    client.close()
    size = len(orders[0].body)
    ten_orders = 2 + 10 * size + 9  # brackets, bodies, commas
    # When planned by count, then by a byte limit of exactly ten orders' worth
    by_count = list(plan_batches(orders, batch_size=100))
    by_bytes = list(plan_batches(orders, batch_size=100, max_bytes=ten_orders))
    # Then groups keep the input order, hold at most 100 orders and fit the byte limit, every time the same
    assert [len(batch) for batch in by_count] == [100, 100, 50]
    assert [order.index for batch in by_count for order in batch] == list(range(250))
    assert [len(batch) for batch in by_bytes] == [10] * 25
    assert list(plan_batches(orders, batch_size=100)) == by_count
    assert list(plan_batches(orders, batch_size=100)) == by_count
