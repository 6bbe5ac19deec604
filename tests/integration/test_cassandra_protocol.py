"""The functions negotiate the native protocol unless it is pinned (finding 4), on a real node.

Cassandra 3.x speaks protocol v4 at most and the former hard-coded `protocol_version=5` could not
connect to it (the driver never downgrades an explicit version). Only 5.0.x runs on this machine,
so this checks the other half on it: pinned to v4 or v3 (what a 3.x cluster negotiates), the schema,
writer and reader work end to end; unpinned, the driver negotiates the node's highest, v5.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from orderpipe_common import cassandra_session
from orderpipe_common.identity import authorizer_context
from orderpipe_common.settings import from_mapping
from orderpipe_devenv.aws.resources import Table
from orderpipe_devenv.lambda_events import (
    LocalLambdaContext,
    proxy_response,
    rest_proxy_event,
    sqs_event_from_bodies,
)
from orderpipe_reader import handler as reader
from orderpipe_schema.handler import apply_schema
from orderpipe_schema.settings import SchemaSettings
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import SAMPLE_PRODUCER, make_orders, message_body
from orderpipe_writer import handler as writer
from orderpipe_writer.settings import WriterSettings
from tests.fixtures.cassandra import CassandraEndpoint

pytestmark = pytest.mark.cassandra


@pytest.fixture
def protocol_env(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    cassandra_endpoint: CassandraEndpoint,
    cache_table: Table,
) -> Iterator[dict[str, str]]:
    pin: int | None = request.param
    env = cassandra_endpoint.settings_env(f"protocol_v{pin or 'any'}_{uuid.uuid4().hex[:6]}")
    if pin is not None:
        env["CASSANDRA_PROTOCOL_VERSION"] = str(pin)
    for name, value in {**env, "CACHE_TABLE_NAME": cache_table.name, "CACHE_TTL_SECONDS": "300"}.items():
        monkeypatch.setenv(name, value)
    reset_process_state()
    yield env
    reset_process_state()


@pytest.mark.parametrize(
    ("protocol_env", "expected"),
    [(None, 5), (4, 4), (3, 3)],
    indirect=["protocol_env"],
    ids=["negotiated", "v4", "v3"],
)
def test_schema_writer_and_reader_work_over_the_protocol_version(
    protocol_env: dict[str, str], expected: int
) -> None:
    # Given a fresh keyspace created by the schema function over that protocol version
    apply_schema(
        from_mapping(
            SchemaSettings,
            protocol_env,
            cassandra_replication={"class": "SimpleStrategy", "replication_factor": 1},
        )
    )
    cassandra_session.reset_session()
    orders = make_orders(10, start=900_000)
    # When the writer stores orders and the reader reads one
    response = writer.lambda_handler(
        sqs_event_from_bodies(message_body(o) for o in orders), LocalLambdaContext()
    )
    answer = proxy_response(
        reader.lambda_handler(
            rest_proxy_event(
                "GET",
                f"/orders/{orders[0].order_id}",
                resource="/orders/{order_id}",
                authorizer=authorizer_context(SAMPLE_PRODUCER, ["orders/read"]),
            ),
            LocalLambdaContext(function_name="orderpipe-reader"),
        )
    )
    # Then both work, over the pinned version (or the negotiated highest, v5 on Cassandra 5.0)
    assert response == {"batchItemFailures": []}
    assert answer.status == 200 and answer.json()["order_id"] == str(orders[0].order_id)
    session = cassandra_session.get_session(from_mapping(WriterSettings, protocol_env))
    assert session.cluster.protocol_version == expected
