"""SnapStart hooks against the real node and moto: nothing opened before the snapshot is used after it.

The hooks are called in-process as Lambda's runtime calls them: before_snapshot once the function is
initialized (and here, warm: it has written through its session and sent through its SQS client),
after_restore in the restored copy, then the next invocation.
"""

from __future__ import annotations

from typing import Any

import pytest

from orderpipe_common import cassandra_session, per_process
from orderpipe_common.deadlines import Deadline
from orderpipe_devenv.lambda_events import sqs_event_from_bodies
from orderpipe_ingest import publisher
from orderpipe_testkit.sample_orders import make_orders, message_body
from orderpipe_writer import handler
from tests.fixtures.aws import IngestEnv

pytestmark = pytest.mark.cassandra


def connections(session: Any) -> list[Any]:
    """Every connection the session holds now: its pools' and its cluster's control connection."""
    found = [session.cluster.control_connection._connection]
    for pool in session.get_pools():
        found.append(getattr(pool, "_connection", None))
    return [connection for connection in found if connection is not None]


def local_ends(held: list[Any]) -> set[tuple[str, int]]:
    return {c._socket.getsockname() for c in held if not c.is_closed and c._socket is not None}


def test_the_writer_restored_from_a_snapshot_writes_through_a_new_session(
    cassandra_env, orders_session, lambda_context
):
    # Given a warm writer: it has written a batch through its session
    first, second = make_orders(2, start=7000), make_orders(2, start=7100)
    assert handler.lambda_handler(sqs_event_from_bodies(map(message_body, first)), lambda_context) == {
        "batchItemFailures": []
    }
    before = cassandra_session.get_session(handler.get_store()._settings)
    held_before = connections(before)
    ends_before = local_ends(held_before)
    assert ends_before
    # When the snapshot is taken and the environment restored
    per_process.before_snapshot()
    per_process.after_restore()
    # Then the pre-snapshot cluster is shut down and every connection it held is closed
    assert before.cluster.is_shutdown
    assert all(connection.is_closed for connection in held_before)
    # And the next batch is written through a new session on new connections
    assert handler.lambda_handler(sqs_event_from_bodies(map(message_body, second)), lambda_context) == {
        "batchItemFailures": []
    }
    after = cassandra_session.get_session(handler.get_store()._settings)
    assert after is not before
    ends_after = local_ends(connections(after))
    assert ends_after and ends_after.isdisjoint(ends_before)
    for order in second:
        assert orders_session.execute(
            "SELECT order_id FROM orders WHERE order_id = %s", (order.order_id,)
        ).one()


def test_the_ingest_restored_from_a_snapshot_sends_through_a_new_client(ingest_env: IngestEnv) -> None:
    # Given a warm ingest: its SQS client has sent a message
    client_before = publisher.sqs_client_for(Deadline.after(5))
    publisher.publisher_within(Deadline.after(5)).send("{}")
    # When the snapshot is taken and the environment restored
    per_process.before_snapshot()
    per_process.after_restore()
    # Then the next send goes through a new client (the old one, and its connection pool, are dropped)
    publisher.publisher_within(Deadline.after(5)).send("{}")
    assert publisher.sqs_client_for(Deadline.after(5)) is not client_before
    assert len(ingest_env.messages()) == 2
