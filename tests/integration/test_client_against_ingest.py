"""The producer client against the real ingest function, behind the API Gateway emulator, on moto.

The scripted API stands in for the service everywhere else; here the real handler answers, so the
client's models and error mapping meet the real answers, and its keys meet the real idempotency
layer (DynamoDB) and id derivation. One connection: the handler runs in the emulator's threads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orderpipe_client import (
    AuthenticationError,
    BearerTokenAuth,
    OrderpipeClient,
    OrderRejectedError,
    RetryPolicy,
)
from orderpipe_client.bulk import import_file, read_outcomes
from orderpipe_common.envelope import parse_envelope
from orderpipe_common.identity import SCOPE_READ, SCOPE_WRITE, authorizer_context
from orderpipe_devenv.lambda_events import LocalLambdaContext
from orderpipe_devenv.runtime.gateway import ApiGatewayEmulator, Route
from orderpipe_devenv.runtime.gateway_auth import Admission, GatewayRequest, unauthorized
from orderpipe_ingest.handler import lambda_handler
from tests.fixtures.aws import IngestEnv
from tests.scripted_orders_api import order

pytestmark = pytest.mark.timeout(120)

TOKEN = "client-test-token"
PRODUCER = "client-test-producer"


class OneTokenGateway:
    """The gateway's authentication reduced to one known bearer token (the authorizer itself is tested
    in tests/unit/test_authorizer.py and over HTTP in tests/e2e/test_identity.py): it admits that token
    as PRODUCER, refuses anything else as API Gateway does (401)."""

    mode = "jwt"

    def admit(self, request: GatewayRequest) -> Admission:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            raise unauthorized()
        return Admission(authorizer=authorizer_context(PRODUCER, [SCOPE_WRITE, SCOPE_READ]), api_key="meter")


def invoke_ingest(event: dict[str, Any]) -> Any:
    return lambda_handler(event, LocalLambdaContext(function_name="orderpipe-ingest"))


@pytest.fixture
def gateway(ingest_env: IngestEnv) -> Iterator[str]:
    emulator = ApiGatewayEmulator(
        routes=[Route("POST", "/orders", invoke_ingest), Route("POST", "/orders/batch", invoke_ingest)],
        auth=OneTokenGateway(),
        port=0,
    )
    emulator.start()
    yield emulator.url
    emulator.stop()


@pytest.fixture
def client(gateway: str) -> Iterator[OrderpipeClient]:
    retry = RetryPolicy(max_attempts=3, base_delay=0.05, deadline=20)
    with OrderpipeClient(gateway, auth=BearerTokenAuth(TOKEN), retry=retry, max_connections=1) as client:
        yield client


def queued_ids(ingest_env: IngestEnv) -> list[uuid.UUID]:
    return [parse_envelope(message["Body"]).order_id for message in ingest_env.messages()]


def test_a_submitted_order_is_queued_under_the_answered_id_and_a_resend_queues_nothing(
    ingest_env: IngestEnv, client: OrderpipeClient
) -> None:
    # When one order is submitted twice
    first = client.submit(order("po-1"))
    second = client.submit(order("po-1"))
    # Then both answers name the same order, queued once
    assert first.order_id == second.order_id
    assert queued_ids(ingest_env) == [first.order_id]


def test_a_batch_gets_per_order_outcomes_and_after_the_window_the_same_ids(
    ingest_env: IngestEnv, client: OrderpipeClient
) -> None:
    # Given a batch with an invalid order in the middle
    orders = [order("po-1"), order("po-2", quantity=0), order("po-3")]
    # When it is submitted, then again after the idempotency records expired
    outcomes = client.submit_batch(orders)
    ingest_env.expire_idempotency_records()
    again = client.submit_batch(orders)
    # Then the invalid one is rejected by field, the others accepted, under the same ids both times
    assert [o.status for o in outcomes] == ["accepted", "rejected", "accepted"]
    assert [e.field for e in outcomes[1].errors] == ["items.0.quantity"]
    assert [o.order_id for o in again] == [o.order_id for o in outcomes]
    # (queued twice, as the same two orders: the writer upserts by id)
    assert sorted(map(str, queued_ids(ingest_env))) == sorted(
        2 * [str(outcomes[0].order_id), str(outcomes[2].order_id)]
    )


def test_the_real_refusal_names_the_field(ingest_env: IngestEnv, client: OrderpipeClient) -> None:
    with pytest.raises(OrderRejectedError) as refused:
        client.submit({**order("po-1"), "currency": "XYZ"})
    assert refused.value.status == 422
    assert [e.field for e in refused.value.errors] == ["currency"]
    assert queued_ids(ingest_env) == []


def test_an_explicit_key_reused_for_another_order_is_a_refusal_sent_once(
    ingest_env: IngestEnv, client: OrderpipeClient
) -> None:
    # Given an order accepted under an explicit key
    client.submit(order("po-1"), idempotency_key="mine-1")
    # When another order is submitted under the same key, Then the real 409 is a refusal naming the
    # key, not a conflict retried until the deadline, and nothing more is queued
    with pytest.raises(OrderRejectedError) as refused:
        client.submit(order("po-2"), idempotency_key="mine-1")
    assert refused.value.status == 409
    assert [e.field for e in refused.value.errors] == ["header.Idempotency-Key"]
    assert len(queued_ids(ingest_env)) == 1


def test_a_wrong_token_is_refused_by_the_gateway(ingest_env: IngestEnv, gateway: str) -> None:
    with (
        OrderpipeClient(gateway, auth=BearerTokenAuth("wrong")) as client,
        pytest.raises(AuthenticationError, match="401"),
    ):
        client.submit(order("po-1"))
    assert queued_ids(ingest_env) == []


def test_a_file_imported_through_the_real_ingest_records_the_queued_ids(
    ingest_env: IngestEnv, client: OrderpipeClient, tmp_path: Path
) -> None:
    # Given 50 lines, lines 5 and 40 invalid
    source = tmp_path / "orders.jsonl"
    source.write_text(
        "".join(
            json.dumps(order(f"line-{n}", quantity=0 if n in (5, 40) else 1)) + "\n" for n in range(1, 51)
        )
    )
    # When it is imported
    result = import_file(source, client, outcome_path=tmp_path / "out.jsonl", concurrency=1, batch_size=20)
    # Then 48 were accepted and 2 rejected, and the recorded ids are the queued ones
    assert (result.accepted, result.rejected, result.failed) == (48, 2, 0)
    final = read_outcomes(tmp_path / "out.jsonl").final
    recorded = sorted(record["order_id"] for record in final.values() if record["status"] == "accepted")
    assert recorded == sorted(str(order_id) for order_id in queued_ids(ingest_env))
