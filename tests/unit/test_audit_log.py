"""The audit lines docs/security.md promises ("What is logged"), as the functions write them.

Each test runs a real handler (queue, cache, store, issuer keys and producers table faked: no network)
with a request carrying a bearer token and an API key, reads the JSON lines the Powertools logger
wrote, and checks the audit line's fields, and that no line holds the token or the key.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from orderpipe_authorizer import handler as authorizer
from orderpipe_authorizer.tokens import JwksTokenVerifier
from orderpipe_common.deadlines import Deadline
from orderpipe_common.identity import SCOPE_READ, SCOPE_WRITE, authorizer_context
from orderpipe_common.model import Order
from orderpipe_common.observability import logger
from orderpipe_devenv.lambda_events import LocalLambdaContext, proxy_response, rest_proxy_event
from orderpipe_devenv.runtime.gateway_auth import GatewayRequest, request_authorizer_event
from orderpipe_ingest import handler as ingest
from orderpipe_ingest import publisher
from orderpipe_reader import handler as reader
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import make_order, order_payload
from tests.unit.fake_sqs import GroupCheckingSqs
from tests.unit.test_authorizer import REGISTRY, Jwks, settings, token

PRODUCER = "acme"
SOURCE_IP = "203.0.113.7"
API_KEY = "usage-plan-key-value-0123456789"


@dataclass
class LogOutput:
    buffer: io.StringIO

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def lines(self, message: str) -> list[dict[str, Any]]:
        """The JSON lines whose message is `message`."""
        parsed = [json.loads(line) for line in self.text.splitlines() if line.strip()]
        return [line for line in parsed if line.get("message") == message]


@pytest.fixture
def log_output() -> Iterator[LogOutput]:
    """What the functions' logger writes (JSON lines), captured from its own handler.

    The handler holds the stdout of the moment the logger was created, so capsys does not see it.
    """
    stream = logger.registered_handler
    assert hasattr(stream, "setStream")
    buffer = io.StringIO()
    previous = stream.setStream(buffer)
    try:
        yield LogOutput(buffer)
    finally:
        stream.setStream(previous)


def assert_secrets_absent(output: LogOutput, *secrets: str) -> None:
    assert output.text.strip(), "nothing was logged"
    for secret in secrets:
        assert secret not in output.text


def headers_with_credentials(bearer: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {bearer}", "x-api-key": API_KEY}


# --- ingest: order(s) accepted ----------------------------------------------------------------


@pytest.fixture
def ingest_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[GroupCheckingSqs]:
    monkeypatch.setenv("ORDERS_QUEUE_URL", "http://sqs.local/000000000000/orders")
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "idempotency")
    sqs = GroupCheckingSqs()
    monkeypatch.setattr(publisher, "sqs_client_for", lambda _deadline: sqs)
    reset_process_state()
    yield sqs
    reset_process_state()


def post(path: str, body: Any, *, bearer: str, request_id: str) -> Any:
    event = rest_proxy_event(
        "POST",
        path,
        headers=headers_with_credentials(bearer),
        body=json.dumps(body),
        authorizer=authorizer_context(PRODUCER, [SCOPE_WRITE]),
        request_id=request_id,
        source_ip=SOURCE_IP,
        api_key=API_KEY,
    )
    return proxy_response(ingest.lambda_handler(event, LocalLambdaContext(function_name="orderpipe-ingest")))


def test_an_accepted_order_is_one_audit_line_with_producer_order_request_and_source(
    ingest_env: GroupCheckingSqs, log_output: LogOutput
) -> None:
    # Given a producer's order posted with a bearer token and an API key
    bearer = token(scope=SCOPE_WRITE)
    # When the ingest accepts it
    response = post("/orders", order_payload(1), bearer=bearer, request_id="req-single-1")
    assert response.status == 202
    # Then one line names the producer, the order id, the request and the source IP
    [line] = log_output.lines("order accepted")
    assert line["producer"] == PRODUCER
    assert line["order_id"] == response.json()["order_id"]
    assert line["request_id"] == "req-single-1"
    assert line["source_ip"] == SOURCE_IP
    # ...and no line holds the token or the key
    assert_secrets_absent(log_output, bearer, API_KEY)


def test_an_accepted_batch_is_one_audit_line_with_every_accepted_order_id(
    ingest_env: GroupCheckingSqs, log_output: LogOutput
) -> None:
    # Given a batch of three orders, one of them invalid
    bearer = token(scope=SCOPE_WRITE)
    invalid = {**order_payload(2), "quantity": -1}
    # When the ingest accepts the two valid ones
    response = post(
        "/orders/batch",
        [order_payload(1), invalid, order_payload(3)],
        bearer=bearer,
        request_id="req-batch-1",
    )
    assert response.status == 202
    accepted = [r["order_id"] for r in response.json()["results"] if r["status"] == "accepted"]
    assert len(accepted) == 2
    # Then one line names the producer, both accepted ids, the request and the source IP
    [line] = log_output.lines("orders accepted")
    assert line["producer"] == PRODUCER
    assert line["order_ids"] == accepted
    assert line["request_id"] == "req-batch-1"
    assert line["source_ip"] == SOURCE_IP
    assert_secrets_absent(log_output, bearer, API_KEY)


# --- authorizer: credential refused -----------------------------------------------------------


@pytest.fixture
def authorizer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authorizer, "get_settings", settings)
    monkeypatch.setattr(authorizer, "get_verifier", lambda: JwksTokenVerifier(settings(), jwks=Jwks()))  # type: ignore[arg-type]
    monkeypatch.setattr(authorizer, "get_registry", lambda: REGISTRY)


def authorizer_event(bearer: str, *, request_id: str) -> dict[str, Any]:
    """The REQUEST authorizer event the gateway sends for a POST /orders with `bearer` and the API key."""
    request = GatewayRequest(
        method="POST",
        path="/orders",
        query="",
        resource="/orders",
        headers={name.lower(): value for name, value in headers_with_credentials(bearer).items()},
        body=b"{}",
        source_ip=SOURCE_IP,
        request_id=request_id,
        stage="v1",
        host="api.example.com",
    )
    return request_authorizer_event(request)


@pytest.mark.parametrize(
    ("what", "claims"),
    [
        ("expired", {"exp": 1_000, "iat": 900, "scope": SCOPE_WRITE}),
        ("foreign issuer", {"iss": "https://elsewhere.example.com", "scope": SCOPE_WRITE}),
        ("wrong audience", {"aud": "someone-else", "scope": SCOPE_WRITE}),
    ],
)
def test_a_token_refused_as_unauthorized_is_an_audit_line_without_the_token(
    authorizer_env: None, log_output: LogOutput, what: str, claims: dict[str, Any]
) -> None:
    # Given a request whose token proves nothing (expired, foreign issuer, wrong audience)
    bearer = token(**claims)
    # When the authorizer decides
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.lambda_handler(authorizer_event(bearer, request_id=f"req-{what}"), LocalLambdaContext())
    # Then one line says the credential was refused with 401, from which request, address and route
    [line] = log_output.lines("credential refused")
    assert line["status"] == 401
    assert line["request_id"] == f"req-{what}"
    assert line["source_ip"] == SOURCE_IP
    assert line["route"] == "POST /orders"
    assert line["reason"]
    assert_secrets_absent(log_output, bearer, API_KEY)


def test_a_forged_token_is_an_audit_line_without_the_token(
    authorizer_env: None, log_output: LogOutput
) -> None:
    # Given a token signed with a key that is not the issuer's
    forged = token(rsa.generate_private_key(public_exponent=65537, key_size=2048), scope=SCOPE_WRITE)
    # When the authorizer decides
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.lambda_handler(authorizer_event(forged, request_id="req-forged"), LocalLambdaContext())
    # Then the refusal is logged (401) and the token is not
    [line] = log_output.lines("credential refused")
    assert (line["status"], line["request_id"], line["source_ip"]) == (401, "req-forged", SOURCE_IP)
    assert_secrets_absent(log_output, forged, API_KEY)


def test_a_revoked_producer_is_an_audit_line_naming_it_without_token_or_usage_key(
    authorizer_env: None, log_output: LogOutput
) -> None:
    # Given a valid token of a client whose producer was revoked ("gone", usage key "key-gone")
    bearer = token(sub="client-2", scope=SCOPE_WRITE)
    # When the authorizer decides
    answer = authorizer.lambda_handler(
        authorizer_event(bearer, request_id="req-revoked"), LocalLambdaContext()
    )
    # Then nothing is allowed (API Gateway's 403) and one line names the producer, request and address
    assert [s["Effect"] for s in answer["policyDocument"]["Statement"]] == ["Deny"]
    [line] = log_output.lines("credential refused")
    assert line["status"] == 403
    assert line["producer"] == "gone"
    assert line["request_id"] == "req-revoked"
    assert line["source_ip"] == SOURCE_IP
    assert line["route"] == "POST /orders"
    # ...and neither the token nor any API key value is in the log
    assert_secrets_absent(log_output, bearer, API_KEY, "key-gone")


def test_a_token_without_an_orders_scope_is_a_403_audit_line(
    authorizer_env: None, log_output: LogOutput
) -> None:
    # Given a valid token of an active producer that holds no orders scope
    bearer = token(scope="profile")
    # When the authorizer decides
    authorizer.lambda_handler(authorizer_event(bearer, request_id="req-noscope"), LocalLambdaContext())
    # Then the refusal names the producer with status 403, and neither the token nor its usage key is logged
    [line] = log_output.lines("credential refused")
    assert (line["status"], line["producer"], line["request_id"]) == (403, "acme", "req-noscope")
    assert_secrets_absent(log_output, bearer, API_KEY, "key-acme")


# --- reader: read denied ----------------------------------------------------------------------


class OneOrder:
    """The cache and the store at once: both hold one order (or the cache holds nothing)."""

    def __init__(self, order: Order, *, cached: bool) -> None:
        self.order, self.cached = order, cached
        self.puts: list[Order] = []

    def get(self, order_id: uuid.UUID, deadline: Deadline) -> Order | None:
        return self.order if self.cached and order_id == self.order.order_id else None

    def put(self, order: Order, deadline: Deadline) -> None:
        self.puts.append(order)

    def find(self, order_id: uuid.UUID, deadline: Deadline) -> Order | None:
        return self.order if order_id == self.order.order_id else None


@pytest.fixture
def reader_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CACHE_TABLE_NAME", "order-cache")
    monkeypatch.setenv("CASSANDRA_KEYSPACE", "orders")
    monkeypatch.setenv("CASSANDRA_CONTACT_POINTS", "127.0.0.1")  # never connected to: the store is faked
    monkeypatch.setenv("CASSANDRA_LOCAL_DC", "dc1")
    reset_process_state()
    yield
    reset_process_state()


@pytest.mark.parametrize("cached", [False, True], ids=["from cassandra", "from the cache"])
def test_reading_another_producers_order_is_a_404_and_an_audit_line(
    reader_env: None, log_output: LogOutput, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    # Given producer "other"'s order, in Cassandra (and maybe in the cache)
    order = make_order(5, producer="other")
    held = OneOrder(order, cached=cached)
    monkeypatch.setattr(reader, "get_cache", lambda: held)
    monkeypatch.setattr(reader, "get_source", lambda: held)
    bearer = token(scope=SCOPE_READ)
    # When producer acme asks for it
    event = rest_proxy_event(
        "GET",
        f"/orders/{order.order_id}",
        headers=headers_with_credentials(bearer),
        resource="/orders/{order_id}",
        authorizer=authorizer_context(PRODUCER, [SCOPE_READ]),
        request_id="req-read-1",
        source_ip=SOURCE_IP,
        api_key=API_KEY,
    )
    response = proxy_response(
        reader.lambda_handler(event, LocalLambdaContext(function_name="orderpipe-reader"))
    )
    # Then the answer is a 404, and one line names the caller, the order, the request and the address
    assert response.status == 404
    [line] = log_output.lines("read denied")
    assert line["producer"] == PRODUCER
    assert line["order_id"] == str(order.order_id)
    assert line["request_id"] == "req-read-1"
    assert line["source_ip"] == SOURCE_IP
    assert_secrets_absent(log_output, bearer, API_KEY)
