"""The whole pipeline over HTTP: API Gateway emulator -> ingest -> SQS -> writer -> Cassandra -> reader."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from orderpipe_common.model import MAX_ORDER_BODY_BYTES
from orderpipe_devenv.runtime.pipeline import LocalRuntime
from orderpipe_testkit.sample_orders import make_order, message_body, order_payload
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.cassandra


def readable(api: httpx.Client, order_id: str) -> dict | None:
    response = api.get(f"/orders/{order_id}")
    return response.json() if response.status_code == 200 else None


def queue_is_empty(runtime: LocalRuntime) -> bool:
    assert runtime.resources is not None
    attributes = runtime.client("sqs").get_queue_attributes(
        QueueUrl=runtime.resources.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        attributes["ApproximateNumberOfMessages"] == "0"
        and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def test_one_order_posted_becomes_readable_with_the_same_content(api):
    # Given an order with prices that binary floats cannot hold
    payload = order_payload(1, items=2)
    payload["items"][0]["unit_price"] = "0.10"
    payload["items"][1]["unit_price"] = "1234567.89"
    # When it is posted
    response = api.post("/orders", json=payload)
    # Then it is accepted with its id and location...
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted"
    assert response.headers["location"] == f"/orders/{body['order_id']}"
    # ...and polling GET returns it, field for field, Decimals exact
    stored = wait_for(lambda: readable(api, body["order_id"]), timeout=20, what="the order to be readable")
    assert stored["order_id"] == body["order_id"]
    assert stored["customer_id"] == payload["customer_id"]
    assert [Decimal(i["unit_price"]) for i in stored["items"]] == [Decimal("0.10"), Decimal("1234567.89")]
    assert [(i["sku"], i["quantity"]) for i in stored["items"]] == [
        (i["sku"], i["quantity"]) for i in payload["items"]
    ]


def test_a_batch_of_200_is_readable_in_bounded_time(api):
    # Given 200 orders, posted as two batch requests of 100
    accepted: list[str] = []
    for start in (0, 100):
        response = api.post("/orders/batch", json=[order_payload(seed) for seed in range(start, start + 100)])
        assert response.status_code == 202, response.text
        accepted += [r["order_id"] for r in response.json()["results"] if r["status"] == "accepted"]
    assert len(accepted) == 200
    # When we poll until each is readable
    deadline = time.monotonic() + 60
    pending = set(accepted)
    while pending and time.monotonic() < deadline:
        pending = {order_id for order_id in pending if readable(api, order_id) is None}
        time.sleep(0.5 if pending else 0)
    # Then every one of them is readable within the bound
    assert not pending, f"{len(pending)} of 200 orders not readable after 60 s"


@pytest.mark.parametrize(
    ("description", "content", "headers", "status"),
    [
        ("malformed JSON", b'{"customer_id": ', {"content-type": "application/json"}, 400),
        (
            "invalid order",
            json.dumps({"customer_id": "c1", "items": [], "currency": "EUR"}).encode(),
            {},
            422,
        ),
        ("oversized body", b'{"customer_id": "' + b"x" * MAX_ORDER_BODY_BYTES + b'"}', {}, 413),
        ("wrong content type", b"customer_id=c1", {"content-type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_enqueue_nothing(
    api, local_runtime, description, content, headers, status
):
    # Given a drained pipeline
    wait_for(lambda: queue_is_empty(local_runtime), timeout=30, what="the queue to drain")
    assert local_runtime.event_source is not None
    records_before = local_runtime.event_source.stats.records
    # When a bad request is posted
    response = api.post("/orders", content=content, headers={"content-type": "application/json", **headers})
    # Then it gets the expected 4xx with a JSON error body...
    assert response.status_code == status, (description, response.text)
    assert "error" in response.json()
    # ...and nothing reached the queue or the writer
    time.sleep(1.5)
    assert queue_is_empty(local_runtime)
    assert local_runtime.event_source.stats.records == records_before


def test_same_idempotency_key_twice_makes_one_order(api):
    # Given one order and one idempotency key
    payload, key = order_payload(7), str(uuid.uuid4())
    # When it is posted twice with that key
    first = api.post("/orders", json=payload, headers={"Idempotency-Key": key})
    second = api.post("/orders", json=payload, headers={"Idempotency-Key": key})
    # Then both answers are the same order, and a different body with the key is refused
    assert first.status_code == second.status_code == 202
    assert first.json()["order_id"] == second.json()["order_id"]
    other = api.post("/orders", json=order_payload(8), headers={"Idempotency-Key": key})
    assert other.status_code in (409, 422)
    wait_for(lambda: readable(api, first.json()["order_id"]), timeout=20, what="the order to be readable")


def test_unknown_and_malformed_ids(api):
    # When a never-posted id and a malformed id are read
    unknown = api.get(f"/orders/{uuid.uuid4()}")
    malformed = api.get("/orders/not-a-uuid")
    # Then: 404 with a Retry-After hint, and 400 naming the field
    assert unknown.status_code == 404
    assert int(unknown.headers["retry-after"]) >= 1
    assert malformed.status_code == 400
    assert malformed.json()["error"]["fields"][0]["field"] == "order_id"


def test_a_poison_message_ends_in_the_dlq_and_its_batch_is_stored(api, local_runtime, producer):
    # Given a poison message sent straight to the queue together with valid orders
    assert local_runtime.resources is not None
    sqs = local_runtime.client("sqs")
    valid = [make_order(seed, producer=producer.name) for seed in range(900, 905)]  # read back as it
    poison_marker = f"poison-{uuid.uuid4()}"
    entries = [{"Id": "poison", "MessageBody": json.dumps({"schema_version": 1, "order": poison_marker})}]
    entries += [{"Id": f"valid{i}", "MessageBody": message_body(o)} for i, o in enumerate(valid)]
    assert local_runtime.event_source is not None
    deleted: list[str] = []  # the bodies the event source deleted as stored
    local_runtime.event_source.on_deleted = lambda messages: deleted.extend(m["Body"] for m in messages)
    sqs.send_message_batch(QueueUrl=local_runtime.resources.queue_url, Entries=entries)

    # When the pipeline has retried it maxReceiveCount times
    def poison_in_dlq() -> bool:
        messages = sqs.receive_message(
            QueueUrl=local_runtime.resources.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages", [])
        return any(poison_marker in m["Body"] for m in messages)

    # Then it is in the DLQ...
    try:
        wait_for(poison_in_dlq, timeout=60, interval=1, what="the poison message to reach the DLQ")
    finally:
        local_runtime.event_source.on_deleted = None
    # ...it was never deleted as if stored, while each valid order's message was
    assert not any(poison_marker in body for body in deleted)
    assert all(any(str(order.order_id) in body for body in deleted) for order in valid)
    # ...and every valid order of its batch is readable
    for order in valid:
        order_id = str(order.order_id)
        stored = wait_for(lambda: readable(api, order_id), timeout=20, what=f"order {order_id}")  # noqa: B023
        assert stored["order_id"] == order_id
