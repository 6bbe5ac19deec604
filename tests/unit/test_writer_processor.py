"""The writer's batch handling, with a fake store (no network)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from orderpipe_common.deadlines import Deadline
from orderpipe_common.model import Order
from orderpipe_common.observability import REQUEST_ID_ATTRIBUTE
from orderpipe_devenv.lambda_events import sqs_event_from_bodies, sqs_record
from orderpipe_testkit.sample_orders import make_orders, message_body
from orderpipe_writer import handler
from orderpipe_writer.store import Outcomes


class FakeStore:
    def __init__(self, fail_ids: set[str] | None = None) -> None:
        self.fail_ids = fail_ids or set()
        self.calls: list[list[Order]] = []

    def insert_many(self, orders: Sequence[Order], deadline: Deadline) -> Outcomes:
        self.calls.append(list(orders))
        return [RuntimeError("write timed out") if str(o.order_id) in self.fail_ids else None for o in orders]


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    store = FakeStore()
    monkeypatch.setattr(handler, "get_store", lambda: store)
    return store


def failed_ids(response: dict) -> set[str]:
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}


def test_valid_batch_is_written_in_one_bulk_call_and_nothing_is_reported(fake_store, lambda_context):
    # Given a batch of 25 valid messages
    orders = make_orders(25)
    event = sqs_event_from_bodies(message_body(o) for o in orders)
    # When the writer handles it
    response = handler.lambda_handler(event, lambda_context)
    # Then all orders went to the store in one concurrent call, and no record is reported failed
    assert response == {"batchItemFailures": []}
    assert [o.order_id for o in fake_store.calls[0]] == [o.order_id for o in orders]
    assert len(fake_store.calls) == 1


def test_malformed_records_fail_alone(fake_store, lambda_context):
    # Given valid messages mixed with undecodable and schema-invalid ones
    orders = make_orders(3)
    bad_bodies = ["not json", json.dumps({"schema_version": 1, "order": {"customer_id": "x"}}), "{}"]
    bad_version = json.loads(message_body(orders[0]))
    bad_version["schema_version"] = 99
    bodies = [message_body(orders[0]), bad_bodies[0], message_body(orders[1]), bad_bodies[1]]
    bodies += [json.dumps(bad_version), message_body(orders[2]), bad_bodies[2]]
    event = sqs_event_from_bodies(bodies)
    # When the writer handles the batch
    response = handler.lambda_handler(event, lambda_context)
    # Then exactly the malformed records are reported, and the valid ones were written
    records = event["Records"]
    assert failed_ids(response) == {records[i]["messageId"] for i in (1, 3, 4, 6)}
    assert {o.order_id for o in fake_store.calls[0]} == {o.order_id for o in orders}


def test_store_failures_are_reported_per_record(fake_store, lambda_context):
    # Given a batch where the store fails two of five orders
    orders = make_orders(5)
    fake_store.fail_ids = {str(orders[1].order_id), str(orders[4].order_id)}
    event = sqs_event_from_bodies(message_body(o) for o in orders)
    # When the writer handles it
    response = handler.lambda_handler(event, lambda_context)
    # Then only those two records come back for retry
    assert failed_ids(response) == {event["Records"][1]["messageId"], event["Records"][4]["messageId"]}


def test_entire_batch_failing_is_reported_not_raised(fake_store, lambda_context):
    # Given a store that fails everything (Cassandra down)
    orders = make_orders(4)
    fake_store.fail_ids = {str(o.order_id) for o in orders}
    event = sqs_event_from_bodies(message_body(o) for o in orders)
    # When the writer handles the batch
    response = handler.lambda_handler(event, lambda_context)
    # Then every record is named, so every one is retried (none acknowledged)
    assert failed_ids(response) == {r["messageId"] for r in event["Records"]}


def test_empty_event_is_a_no_op(fake_store, lambda_context):
    assert handler.lambda_handler({"Records": []}, lambda_context) == {"batchItemFailures": []}
    assert fake_store.calls == []


def test_stored_orders_are_logged_with_the_request_and_trace_that_posted_them(
    fake_store, lambda_context, caplog
):
    # Given messages from two ingest requests (the id in a message attribute, the trace header as SQS
    # keeps it), one of whose orders the store fails
    orders = make_orders(4)
    fake_store.fail_ids = {str(orders[3].order_id)}
    traces = {"req-1": "1-6740c0de-0123456789abcdef01234567", "req-2": "1-6740c0df-89abcdef0123456789abcdef"}
    posted_by = ["req-1", "req-1", "req-2", "req-2"]
    event = {
        "Records": [
            sqs_record(
                message_body(order),
                attributes={"AWSTraceHeader": f"Root={traces[request]};Parent=53995c3f42cd8ad8;Sampled=1"},
                message_attributes={REQUEST_ID_ATTRIBUTE: {"DataType": "String", "StringValue": request}},
            )
            for order, request in zip(orders, posted_by, strict=True)
        ]
    }
    # When the writer handles the batch
    handler.lambda_handler(event, lambda_context)
    # Then one line names each stored order under its request and that request's trace; not the failed one
    [line] = [record for record in caplog.records if record.getMessage() == "orders written"]
    assert vars(line)["requests"] == {
        "req-1": {"posted_trace_id": traces["req-1"], "order_ids": [str(o.order_id) for o in orders[:2]]},
        "req-2": {"posted_trace_id": traces["req-2"], "order_ids": [str(orders[2].order_id)]},
    }
