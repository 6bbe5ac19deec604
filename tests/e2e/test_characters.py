"""No character makes a valid-looking order fail later.

Every free-text field, holding the characters SQS refuses in a message body (and NUL and other
awkward ones), goes through the real path: HTTP -> ingest -> ElasticMQ (which refuses what SQS
refuses) -> writer -> Cassandra -> reader, and comes back the same; a lone surrogate is a 422
naming the field (in a batch, that order alone is rejected), and an object that repeats a key a 400
naming where. (That a repeated key enqueues nothing is checked against ingest and its queue
directly, in tests/integration/test_ingest_api.py.)
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cassandra.cluster import Session

from orderpipe_devenv.runtime.pipeline import LocalRuntime
from orderpipe_testkit.sample_orders import order_payload
from tests.e2e.conftest import wait_for
from tests.fixtures.cassandra import in_ci

pytestmark = pytest.mark.cassandra

FREE_TEXT_FIELDS = [
    "client_reference",
    "shipping_address.name",
    "shipping_address.line1",
    "shipping_address.line2",
    "shipping_address.city",
    "shipping_address.region",
    "shipping_address.postal_code",
]
# What SQS refuses in a message body (NUL, C0 controls but tab/LF/CR, U+FFFE, U+FFFF), then a
# line separator, a right-to-left override, a BOM and two characters outside the BMP: 19 characters,
# within the shortest field's bound (postal_code, 20).
HARD_TEXT = "x\x00\x01\x08\x0b\x0c\x1f\ufffe\uffff\t\n\r\x7f\u2028\u202e\ufeff\U0001f4a5\U0010ffff"


@pytest.fixture(autouse=True)
def _real_sqs_rules(local_runtime: LocalRuntime) -> None:
    if local_runtime.sqs_endpoint_url is None:  # moto takes any body: the test would prove nothing
        if in_ci():
            pytest.fail("the character tests need ElasticMQ under CI", pytrace=False)
        pytest.skip("ElasticMQ did not start (no java or mvn): moto does not apply SQS's character rules")


def order_with(field: str, text: str, seed: int) -> dict[str, Any]:
    payload = order_payload(seed, items=1)
    payload["shipping_address"] = {
        "name": "n",
        "line1": "l1",
        "line2": "l2",
        "city": "c",
        "region": "r",
        "postal_code": "p",
        "country": "GB",
    }
    target = payload
    *parents, name = field.split(".")
    for parent in parents:
        target = target[parent]
    target[name] = text
    return payload


def field_of(order: dict[str, Any], field: str) -> Any:
    value: Any = order
    for part in field.split("."):
        value = value[part]
    return value


def readable(api: httpx.Client, order_id: str) -> dict[str, Any] | None:
    response = api.get(f"/orders/{order_id}")
    return response.json() if response.status_code == 200 else None


@pytest.mark.parametrize("field", FREE_TEXT_FIELDS)
def test_characters_sqs_refuses_are_stored_and_read_back_unchanged(
    api: httpx.Client, cql_session: Session, local_runtime: LocalRuntime, field: str
) -> None:
    # Given an order whose field holds characters SQS refuses, posted alone and in a batch
    single = api.post("/orders", json=order_with(field, HARD_TEXT, 1))
    batch = api.post("/orders/batch", json=[order_with(field, HARD_TEXT, 2), order_with(field, "plain", 3)])
    # Then both are accepted (not a 503 from a queue that refused the message)...
    assert single.status_code == 202, single.text
    assert batch.status_code == 202, batch.text
    assert [result["status"] for result in batch.json()["results"]] == ["accepted", "accepted"]
    ids = [single.json()["order_id"], batch.json()["results"][0]["order_id"]]
    # ...and once written, GET answers the same text, and Cassandra's row holds it
    for order_id in ids:
        stored = wait_for(lambda: readable(api, order_id), timeout=30, what=f"order {order_id}")  # noqa: B023
        assert field_of(stored, field) == HARD_TEXT
        row = cql_session.execute(
            f"SELECT client_reference, shipping_address FROM {local_runtime.config.keyspace}.orders "
            f"WHERE order_id = {order_id}"
        ).one()
        in_row = (
            row.client_reference if field == "client_reference" else getattr(row.shipping_address, field[17:])
        )
        assert in_row == HARD_TEXT


@pytest.mark.parametrize("field", FREE_TEXT_FIELDS)
@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc00b"])
def test_a_lone_surrogate_is_a_422_naming_the_field(
    api: httpx.Client, local_runtime: LocalRuntime, field: str, escape: str
) -> None:
    # Given an order whose field is a JSON escape of a lone surrogate (not a character)
    marker = "\u2603lone-surrogate\u2603"
    body = json.dumps(order_with(field, marker, 4)).replace(json.dumps(marker)[1:-1], escape)
    # When it is posted alone and in a batch with a valid order
    single = api.post("/orders", content=body, headers={"content-type": "application/json"})
    batch = api.post(
        "/orders/batch",
        content=f"[{body}, {json.dumps(order_payload(5, items=1))}]",
        headers={"content-type": "application/json"},
    )
    # Then the order is refused, naming the field (in the batch, only that order)
    assert single.status_code == 422, single.text
    assert [f["field"] for f in single.json()["error"]["fields"]] == [field]
    assert batch.status_code == 202, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted"]
    assert [e["field"] for e in results[0]["errors"]] == [field]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/orders", '{"customer_id": "c-1", "customer_id": "c-2"}', "customer_id"),
        ("/orders/batch", '[{"items": [{"sku": "A", "sku": "B"}]}]', "0.items.0.sku"),
    ],
)
def test_an_object_repeating_a_key_is_a_400_over_http(
    api: httpx.Client, path: str, body: str, field: str
) -> None:
    response = api.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0] == {
        "field": field,
        "message": response.json()["error"]["fields"][0]["message"],
        "type": "json_duplicate_key",
    }
