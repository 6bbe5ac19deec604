"""Every answer within its deadline under network faults: Toxiproxy between the functions and the
real dependencies (a Cassandra node, moto's SQS and DynamoDB).

A `timeout` toxic on the upstream is a black hole: connections are accepted, requests vanish, nothing
is answered (the node that hangs). A `latency` toxic delays every answer. The functions run in this
process with a fresh Lambda context per invocation, as Lambda gives them; their deadlines come from it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from cassandra.query import ValueSequence

from orderpipe_authorizer import handler as authorizer
from orderpipe_common.envelope import parse_envelope
from orderpipe_common.identity import SCOPE_WRITE, authorizer_context
from orderpipe_common.model import Order
from orderpipe_common.tables import (
    PRODUCER_ACTIVE,
    PRODUCERS_NAME_ATTRIBUTE,
    PRODUCERS_PARTITION_KEY,
    PRODUCERS_STATUS_ATTRIBUTE,
    PRODUCERS_USAGE_KEY_ATTRIBUTE,
)
from orderpipe_common.tuning import DEFAULT_TUNING
from orderpipe_devenv.aws.identity import create_producers_table
from orderpipe_devenv.aws.resources import Table
from orderpipe_devenv.lambda_events import (
    LocalLambdaContext,
    ProxyResponse,
    proxy_response,
    rest_proxy_event,
    sqs_event_from_bodies,
)
from orderpipe_devenv.local_issuer import LocalIssuer
from orderpipe_devenv.toxiproxy import Proxy, Toxic, ToxiproxyClient
from orderpipe_ingest import handler as ingest
from orderpipe_reader import handler as reader
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import (
    SAMPLE_PRODUCER,
    make_order,
    make_orders,
    message_body,
    order_payload,
)
from orderpipe_writer import handler as writer
from stacks.functions import AUTHORIZER
from tests.fixtures.aws import IngestEnv
from tests.fixtures.toxiproxy import endpoint_url

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.cassandra

# What the issue promises a client: an answer (a 503 at worst) within this, whatever hangs.
ANSWER_WITHIN_SECONDS = 3.0
# What the writer must keep before its timeout when it reports failures.
WRITER_MARGIN_SECONDS = 2.0
BLACK_HOLE = Toxic.timeout(stream="upstream")  # accepted, never answered


def timed[T](call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def wait_for[T](call: Callable[[], T], done: Callable[[T], bool], *, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = call()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


# --- the functions, invoked as Lambda invokes them ----------------------------------------------------


def get_order(order_id: object) -> ProxyResponse:
    event = rest_proxy_event(
        "GET",
        f"/orders/{order_id}",
        resource="/orders/{order_id}",
        authorizer=authorizer_context(SAMPLE_PRODUCER, ["orders/read"]),
    )
    context = LocalLambdaContext(
        function_name="reader", timeout_seconds=DEFAULT_TUNING.reader_timeout_seconds
    )
    return proxy_response(reader.lambda_handler(event, context))


def write_batch(orders: list[Order], context: LocalLambdaContext | None = None) -> dict[str, Any]:
    event = sqs_event_from_bodies(message_body(o) for o in orders)
    context = context or LocalLambdaContext(timeout_seconds=DEFAULT_TUNING.writer_timeout_seconds)
    return dict(writer.lambda_handler(event, context))


def post(path: str, body: Any, headers: Mapping[str, str] | None = None) -> ProxyResponse:
    event = rest_proxy_event(
        "POST",
        path,
        headers={"Content-Type": "application/json", **(headers or {})},
        body=json.dumps(body),
        resource=path,
        authorizer=authorizer_context(SAMPLE_PRODUCER, [SCOPE_WRITE]),
    )
    context = LocalLambdaContext(
        function_name="ingest", timeout_seconds=DEFAULT_TUNING.ingest_timeout_seconds
    )
    return proxy_response(ingest.lambda_handler(event, context))


def assert_503_with_retry_after(response: ProxyResponse) -> None:
    assert response.status == 503, response.body
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] in {"service_unavailable", "queue_unavailable"}


# --- fixtures: the functions' dependencies behind proxies -------------------------------------------


@dataclass(frozen=True)
class Proxied:
    cassandra: Proxy
    dynamodb: Proxy
    sqs: Proxy


@pytest.fixture
def proxied(
    monkeypatch: pytest.MonkeyPatch,
    cassandra_env: dict[str, str],
    cassandra_proxy: Proxy,
    moto_proxies: Callable[[str], Proxy],
) -> Iterator[Proxied]:
    """Cassandra, DynamoDB and SQS each behind a proxy of its own, the functions pointed at them."""
    proxies = Proxied(cassandra=cassandra_proxy, dynamodb=moto_proxies("dynamodb"), sqs=moto_proxies("sqs"))
    monkeypatch.setenv("CASSANDRA_CONTACT_POINTS", cassandra_proxy.host)
    monkeypatch.setenv("CASSANDRA_PORT", str(cassandra_proxy.port))
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint_url(proxies.dynamodb))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", endpoint_url(proxies.sqs))
    reset_process_state()
    yield proxies
    reset_process_state()


@pytest.fixture
def reader_env(monkeypatch: pytest.MonkeyPatch, proxied: Proxied, cache_table: Table) -> Proxied:
    monkeypatch.setenv("CACHE_TABLE_NAME", cache_table.name)
    reset_process_state()
    return proxied


@pytest.fixture
def ingest_faults(ingest_env: IngestEnv, proxied: Proxied) -> tuple[IngestEnv, Proxied]:
    reset_process_state()  # the ingest's clients now go through the proxies
    return ingest_env, proxied


def stored_and_warm(*orders: Order) -> None:
    """The orders are stored (through the proxy), and this process has a Cassandra session."""
    assert write_batch(list(orders)) == {"batchItemFailures": []}


# --- reader ---------------------------------------------------------------------------------------------


def test_reader_with_cassandra_black_holed_answers_a_miss_503_within_3_s_and_a_hit_200(reader_env):
    # Given two stored orders, one of them read once (so cached), and a reader with a session
    cached, uncached = make_order(7000), make_order(7001)
    stored_and_warm(cached, uncached)
    assert get_order(cached.order_id).status == 200
    # When Cassandra accepts connections but never answers
    with reader_env.cassandra.toxic(BLACK_HOLE):
        miss, miss_seconds = timed(lambda: get_order(uncached.order_id))
        hit = get_order(cached.order_id)
    # Then the miss is a 503 with Retry-After within 3 s, and the hit is still a 200 with the order
    assert_503_with_retry_after(miss)
    assert miss_seconds < ANSWER_WITHIN_SECONDS
    assert hit.status == 200
    assert Order.model_validate_json(hit.body) == cached
    # And once Cassandra answers again, the miss is served by the same process
    healed = wait_for(lambda: get_order(uncached.order_id), lambda r: r.status == 200, timeout=30)
    assert healed.status == 200
    assert Order.model_validate_json(healed.body) == uncached


def test_reader_cold_start_with_cassandra_black_holed_is_503_within_3_s(reader_env):
    # Given a stored order and a reader process that has no session yet
    order = make_order(7010)
    stored_and_warm(order)
    reset_process_state()
    # When Cassandra is black-holed and the order is read
    with reader_env.cassandra.toxic(BLACK_HOLE):
        response, seconds = timed(lambda: get_order(order.order_id))
    # Then the connect does not hold the answer: a 503 with Retry-After within 3 s
    assert_503_with_retry_after(response)
    assert seconds < ANSWER_WITHIN_SECONDS
    # And once the fault is gone, the order is read (the connect goes on in the background)
    healed = wait_for(lambda: get_order(order.order_id), lambda r: r.status == 200, timeout=30)
    assert Order.model_validate_json(healed.body) == order


def test_reader_with_the_cache_black_holed_still_reads_from_cassandra_within_3_s(reader_env):
    # Given a stored order, not cached, and a reader with a session
    order = make_order(7020)
    stored_and_warm(order)
    # When DynamoDB (the cache) accepts connections but never answers
    with reader_env.dynamodb.toxic(BLACK_HOLE):
        response, seconds = timed(lambda: get_order(order.order_id))
    # Then the order comes from Cassandra within 3 s (degraded: no cache)
    assert response.status == 200, response.body
    assert Order.model_validate_json(response.body) == order
    assert seconds < ANSWER_WITHIN_SECONDS


@pytest.mark.parametrize("dependency", ["cassandra", "dynamodb"])
@pytest.mark.parametrize("latency_ms", [50, 500])
def test_reader_under_latency_answers_200_with_the_order(reader_env, dependency, latency_ms):
    # Given a stored order, not cached, and a reader that has read once (session and connections warm)
    order, other = make_order(7030 + latency_ms), make_order(7031 + latency_ms)
    stored_and_warm(order, other)
    assert get_order(other.order_id).status == 200
    # When every answer of one dependency is delayed
    proxy = getattr(reader_env, dependency)
    with proxy.toxic(Toxic.latency(latency_ms)):
        response, seconds = timed(lambda: get_order(order.order_id))
    # Then the GET is still a 200 with the order, within the answer budget
    assert response.status == 200, response.body
    assert Order.model_validate_json(response.body) == order
    assert seconds < ANSWER_WITHIN_SECONDS


# --- writer ---------------------------------------------------------------------------------------------


def write_black_holed(proxied: Proxied, orders: list[Order]) -> tuple[dict[str, Any], float]:
    """The writer's answer to a batch with Cassandra black-holed, and the seconds it had left then."""
    context = LocalLambdaContext(timeout_seconds=DEFAULT_TUNING.writer_timeout_seconds)
    with proxied.cassandra.toxic(BLACK_HOLE):
        response = write_batch(orders, context)
        return response, context.get_remaining_time_in_millis() / 1000


def test_writer_with_cassandra_black_holed_reports_every_record_2_s_before_its_timeout(proxied):
    # Given a writer with a session
    stored_and_warm(make_order(7100))
    orders = make_orders(20, start=7110)
    # When Cassandra accepts connections but never answers, and a batch arrives
    response, left = write_black_holed(proxied, orders)
    # Then every record is in batchItemFailures, answered at least 2 s before the function's timeout
    assert len(response["batchItemFailures"]) == len(orders)
    assert left >= WRITER_MARGIN_SECONDS
    # And once Cassandra answers again, the same process stores the redelivered batch
    healed = wait_for(lambda: write_batch(orders), lambda r: not r["batchItemFailures"], timeout=60)
    assert healed == {"batchItemFailures": []}


def test_writer_cold_start_with_cassandra_black_holed_reports_every_record_before_its_timeout(proxied):
    # Given a writer process with no session yet, and Cassandra black-holed
    orders = make_orders(5, start=7200)
    # When a batch arrives
    response, left = write_black_holed(proxied, orders)
    # Then the connect does not outlast the function: every record is reported, 2 s to spare
    assert len(response["batchItemFailures"]) == len(orders)
    assert left >= WRITER_MARGIN_SECONDS


@pytest.mark.parametrize("latency_ms", [50, 500])
def test_writer_under_latency_stores_the_whole_batch(proxied, orders_session, latency_ms):
    # Given a writer with a session
    stored_and_warm(make_order(7300 + latency_ms))
    orders = make_orders(40, start=7310 + latency_ms)
    # When every answer from Cassandra is delayed
    with proxied.cassandra.toxic(Toxic.latency(latency_ms)):
        response = write_batch(orders)
    # Then the whole batch is stored
    assert response == {"batchItemFailures": []}
    rows = orders_session.execute(
        "SELECT order_id FROM orders WHERE order_id IN %s", (ValueSequence([o.order_id for o in orders]),)
    )
    assert {row.order_id for row in rows} == {o.order_id for o in orders}


# --- ingest ---------------------------------------------------------------------------------------------


def queued_order_ids(env: IngestEnv) -> list[uuid.UUID]:
    return [parse_envelope(message["Body"]).order_id for message in env.messages()]


@pytest.mark.parametrize("path", ["/orders", "/orders/batch"])
def test_ingest_with_sqs_black_holed_is_503_within_3_s_and_a_retry_enqueues_once(ingest_faults, path):
    env, proxies = ingest_faults
    payload: Any = order_payload(7400) if path == "/orders" else [order_payload(7401), order_payload(7402)]
    key = {"Idempotency-Key": f"sqs-down-{path}"}
    assert post("/orders", order_payload(7403)).status == 202  # connections warm
    env.messages()  # and that message out of the way
    # When SQS accepts connections but never answers
    with proxies.sqs.toxic(BLACK_HOLE):
        response, seconds = timed(lambda: post(path, payload, key))
    # Then the POST is a 503 with Retry-After within 3 s, and nothing is on the queue
    assert_503_with_retry_after(response)
    assert seconds < ANSWER_WITHIN_SECONDS
    assert env.messages() == []
    # And the producer's retry with the same key (SQS back) is accepted and enqueued once: the key
    # was not left locked, nothing half-done is replayed
    retried = post(path, payload, key)
    assert retried.status == 202, retried.body
    assert len(queued_order_ids(env)) == (1 if path == "/orders" else 2)


@pytest.mark.parametrize("path", ["/orders", "/orders/batch"])
def test_ingest_whose_sqs_answers_are_lost_is_503_and_the_retry_keeps_the_order_ids(ingest_faults, path):
    env, proxies = ingest_faults
    payload: Any = order_payload(7450) if path == "/orders" else [order_payload(7451), order_payload(7452)]
    key = {"Idempotency-Key": f"sqs-answers-lost-{path}"}
    assert post("/orders", order_payload(7453)).status == 202  # connections warm
    env.messages()  # and that message out of the way
    # When SQS takes the messages but its answers never come back (the enqueue may have happened)
    with proxies.sqs.toxic(Toxic.timeout(stream="downstream")):
        response, seconds = timed(lambda: post(path, payload, key))
    # Then the POST is a 503 with Retry-After within 3 s: the producer must retry, not give up
    assert_503_with_retry_after(response)
    assert seconds < ANSWER_WITHIN_SECONDS
    # And the retry with the same key is accepted under the same order ids as whatever reached the
    # queue before, so the writer stores each order once (it writes by order id)
    retried = post(path, payload, key)
    assert retried.status == 202, retried.body
    answered = retried.json()
    ids = (
        {uuid.UUID(answered["order_id"])}
        if path == "/orders"
        else {uuid.UUID(result["order_id"]) for result in answered["results"]}
    )
    assert len(ids) == (1 if path == "/orders" else 2)
    assert set(queued_order_ids(env)) == ids


def test_ingest_with_dynamodb_black_holed_is_503_within_3_s_and_nothing_is_enqueued(ingest_faults):
    env, proxies = ingest_faults
    payload, key = order_payload(7500), {"Idempotency-Key": "dynamodb-down"}
    # When the idempotency store accepts connections but never answers
    with proxies.dynamodb.toxic(BLACK_HOLE):
        response, seconds = timed(lambda: post("/orders", payload, key))
    # Then the POST is a 503 with Retry-After within 3 s, and nothing was enqueued
    assert_503_with_retry_after(response)
    assert seconds < ANSWER_WITHIN_SECONDS
    assert env.messages() == []
    # And the retry is accepted: one order on the queue
    retried = post("/orders", payload, key)
    assert retried.status == 202, retried.body
    assert queued_order_ids(env) == [uuid.UUID(retried.json()["order_id"])]


def test_ingest_whose_idempotency_answers_are_lost_frees_the_key_by_its_deadline(ingest_faults):
    env, proxies = ingest_faults
    payload, key = order_payload(7600), {"Idempotency-Key": "answers-lost"}
    # When the idempotency store takes the in-progress record but its answers are lost
    with proxies.dynamodb.toxic(Toxic.timeout(stream="downstream")):
        response, seconds = timed(lambda: post("/orders", payload, key))
    # Then the POST is a 503 within 3 s, nothing enqueued...
    assert_503_with_retry_after(response)
    assert seconds < ANSWER_WITHIN_SECONDS
    assert env.messages() == []
    # ...and the key is not left locked: a retry after Retry-After is accepted, one order enqueued
    time.sleep(int(response.headers["retry-after"]))
    retried = post("/orders", payload, key)
    assert retried.status == 202, retried.body
    assert queued_order_ids(env) == [uuid.UUID(retried.json()["order_id"])]


def test_ingest_without_a_key_with_sqs_black_holed_is_503_within_3_s(ingest_faults):
    env, proxies = ingest_faults
    with proxies.sqs.toxic(BLACK_HOLE):
        response, seconds = timed(lambda: post("/orders", order_payload(7700)))
    assert_503_with_retry_after(response)
    assert seconds < ANSWER_WITHIN_SECONDS
    assert env.messages() == []


@pytest.mark.parametrize("dependency", ["sqs", "dynamodb"])
@pytest.mark.parametrize("latency_ms", [50, 500])
def test_ingest_under_latency_accepts_and_enqueues_once(ingest_faults, dependency, latency_ms):
    env, proxies = ingest_faults
    payload, key = order_payload(7800 + latency_ms), {"Idempotency-Key": f"slow-{dependency}-{latency_ms}"}
    # When every answer of SQS or of the idempotency store is delayed
    with getattr(proxies, dependency).toxic(Toxic.latency(latency_ms)):
        response, seconds = timed(lambda: post("/orders", payload, key))
    # Then the order is accepted within the budget and on the queue once, as posted
    assert response.status == 202, response.body
    assert seconds < ANSWER_WITHIN_SECONDS
    [message] = env.messages()
    assert parse_envelope(message["Body"]).order_id == uuid.UUID(response.json()["order_id"])
    assert parse_envelope(message["Body"]).customer_id == payload["customer_id"]


# --- the authorizer: the issuer's keys and the producers table behind proxies ----------------------


class _NoClients:
    def find(self, client_id: str) -> None:
        return None


@dataclass(frozen=True)
class AuthorizerFaults:
    issuer: LocalIssuer
    jwks: Proxy
    producers: Proxy


@pytest.fixture
def authorizer_faults(
    monkeypatch: pytest.MonkeyPatch,
    toxiproxy_client: ToxiproxyClient,
    moto_proxies: Callable[[str], Proxy],
    dynamodb_client: DynamoDBClient,
    aws_name: str,
) -> Iterator[AuthorizerFaults]:
    """A local issuer whose keys are fetched through a proxy, and a producers table (moto) behind
    another, with one active producer for the client `client-1`."""
    table = create_producers_table(f"{aws_name}-producers", dynamodb=dynamodb_client)
    dynamodb_client.put_item(
        TableName=table,
        Item={
            PRODUCERS_PARTITION_KEY: {"S": "client-1"},
            PRODUCERS_NAME_ATTRIBUTE: {"S": "acme"},
            PRODUCERS_STATUS_ATTRIBUTE: {"S": PRODUCER_ACTIVE},
            PRODUCERS_USAGE_KEY_ATTRIBUTE: {"S": "key-acme"},
        },
    )
    with LocalIssuer(clients=_NoClients(), audience=None) as issuer:
        upstream = issuer.url.removeprefix("http://")
        jwks = toxiproxy_client.create_proxy(f"jwks-{aws_name}", upstream=upstream)
        producers = moto_proxies("dynamodb")
        monkeypatch.setenv("AUTH_ISSUER", issuer.issuer)
        monkeypatch.setenv("AUTH_JWKS_URL", f"{endpoint_url(jwks)}{urlsplit(issuer.jwks_url).path}")
        monkeypatch.setenv("PRODUCERS_TABLE_NAME", table)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint_url(producers))
        reset_process_state()
        yield AuthorizerFaults(issuer=issuer, jwks=jwks, producers=producers)
    reset_process_state()


def authorize_request(faults: AuthorizerFaults) -> dict[str, Any]:
    """The authorizer invoked as API Gateway invokes it for `POST /orders` with a fresh token."""
    token = faults.issuer.mint("client-1", [SCOPE_WRITE])
    method_arn = "arn:aws:execute-api:us-east-1:000000000000:local/v1/POST/orders"
    event = {
        "type": "REQUEST",
        "methodArn": method_arn,
        "resource": "/orders",
        "path": "/orders",
        "httpMethod": "POST",
        "headers": {"Authorization": f"Bearer {token}"},
        "requestContext": {"requestId": str(uuid.uuid4()), "identity": {"sourceIp": "127.0.0.1"}},
    }
    context = LocalLambdaContext(function_name="authorizer", timeout_seconds=AUTHORIZER.timeout_seconds)
    return dict(authorizer.lambda_handler(event, context))


def failed_within(call: Callable[[], object]) -> float:
    """Seconds until `call` raised the authorizer's "cannot decide" error (API Gateway: 503)."""
    started = time.monotonic()
    with pytest.raises(authorizer.AuthorizerUnavailableError):
        call()
    return time.monotonic() - started


def test_authorizer_with_the_producers_table_black_holed_fails_within_3_s(authorizer_faults):
    # Given a warm authorizer that allowed a producer (keys fetched, table read)
    allowed = authorize_request(authorizer_faults)
    assert allowed["principalId"] == "acme" and allowed["usageIdentifierKey"] == "key-acme"
    # When the producers table accepts connections and never answers
    with authorizer_faults.producers.toxic(BLACK_HOLE):
        seconds = failed_within(lambda: authorize_request(authorizer_faults))
    # Then the decision fails as "cannot decide" (API Gateway answers 503 + Retry-After) within 3 s,
    # at least 2 s before the function's own timeout
    assert seconds < ANSWER_WITHIN_SECONDS
    assert seconds < AUTHORIZER.timeout_seconds - 2
    # And with the table back, the next decision allows again
    assert authorize_request(authorizer_faults)["principalId"] == "acme"


def test_authorizer_cold_with_the_issuers_keys_black_holed_fails_within_3_s(authorizer_faults):
    # Given a cold authorizer (no signing keys fetched yet) and an issuer that never answers
    with authorizer_faults.jwks.toxic(BLACK_HOLE):
        seconds = failed_within(lambda: authorize_request(authorizer_faults))
    # Then it fails as "cannot decide" within 3 s, not as a refusal and not by its timeout
    assert seconds < ANSWER_WITHIN_SECONDS
    # And once the issuer answers, the producer is allowed
    assert authorize_request(authorizer_faults)["principalId"] == "acme"
