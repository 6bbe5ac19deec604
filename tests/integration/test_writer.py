"""The writer against a real Cassandra node: SQS events in, rows and batchItemFailures out."""

from __future__ import annotations

import json

import pytest

from orderpipe_common.order_rows import SELECT_ORDER_CQL, order_from_row
from orderpipe_devenv.lambda_events import LocalLambdaContext, sqs_event_from_bodies
from orderpipe_testkit.sample_orders import make_orders, message_body
from orderpipe_writer import handler
from tests.fixtures.cassandra import wait_until_queryable

pytestmark = pytest.mark.cassandra


def stored(session, order_id):
    row = session.execute(SELECT_ORDER_CQL.replace("?", "%s"), (order_id,)).one()
    return order_from_row(row) if row is not None else None


def failed_ids(response: dict) -> set[str]:
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}


def test_a_large_batch_is_stored_exactly(cassandra_env, orders_session, lambda_context):
    # Given 600 varied orders as queue messages
    orders = make_orders(600)
    event = sqs_event_from_bodies(message_body(o) for o in orders)
    # When the writer handles them as one batch
    response = handler.lambda_handler(event, lambda_context)
    # Then nothing is reported failed and every row equals its message (Decimals and timestamps exact)
    assert response == {"batchItemFailures": []}
    for order in orders:
        assert stored(orders_session, order.order_id) == order


def test_malformed_records_are_reported_and_the_rest_stored(cassandra_env, orders_session, lambda_context):
    # Given valid messages mixed with undecodable and schema-invalid ones
    orders = make_orders(6, start=1000)
    invalid = json.loads(message_body(orders[0]))
    invalid["order"]["items"][0]["quantity"] = 0
    bodies = [message_body(o) for o in orders]
    bodies[1:1] = ["{not json"]
    bodies[4:4] = [json.dumps(invalid)]
    event = sqs_event_from_bodies(bodies)
    # When the writer handles the batch
    response = handler.lambda_handler(event, lambda_context)
    # Then only the two malformed records are reported...
    assert failed_ids(response) == {event["Records"][1]["messageId"], event["Records"][4]["messageId"]}
    # ...and every valid order is in Cassandra
    for order in orders:
        assert stored(orders_session, order.order_id) == order


def test_a_redelivered_message_leaves_one_unchanged_row(cassandra_env, orders_session, lambda_context):
    # Given an order already written once
    (order,) = make_orders(1, start=2000)
    body = message_body(order)
    handler.lambda_handler(sqs_event_from_bodies([body]), lambda_context)
    # When the same message is delivered twice more (at-least-once delivery)
    response = handler.lambda_handler(sqs_event_from_bodies([body, body]), lambda_context)
    # Then there is still exactly one row for it, with the same content
    assert response == {"batchItemFailures": []}
    rows = list(orders_session.execute("SELECT order_id FROM orders WHERE order_id=%s", (order.order_id,)))
    assert len(rows) == 1
    assert stored(orders_session, order.order_id) == order


def test_cassandra_down_means_every_record_is_reported_then_it_recovers(
    cassandra_env, cassandra_outage, orders_session
):
    # Given a writer that has a session, and then Cassandra stops (a context per invocation: the
    # writer's deadline comes from it)
    handler.lambda_handler(
        sqs_event_from_bodies([message_body(make_orders(1, start=3000)[0])]), LocalLambdaContext()
    )
    cassandra_outage.stop()
    # When a batch arrives
    orders = make_orders(20, start=3100)
    event = sqs_event_from_bodies(message_body(o) for o in orders)
    response = handler.lambda_handler(event, LocalLambdaContext())
    # Then every record is reported failed: nothing is acknowledged that is not stored
    assert failed_ids(response) == {r["messageId"] for r in event["Records"]}
    # And when Cassandra is back, the same process (its session from before the outage, as after
    # a Lambda freeze/thaw) writes the redelivered batch without a failure
    cassandra_outage.start()
    assert handler.lambda_handler(event, LocalLambdaContext()) == {"batchItemFailures": []}
    wait_until_queryable(orders_session)  # the test's own assertion session reconnects on its own schedule
    for order in orders:
        assert stored(orders_session, order.order_id) == order
