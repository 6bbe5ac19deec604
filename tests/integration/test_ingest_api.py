"""The ingest function end to end against moto: REST proxy events in, real messages on the queue out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from orderpipe_common.deadlines import Deadline
from orderpipe_common.envelope import parse_envelope
from orderpipe_common.identity import SCOPE_WRITE, authorizer_context
from orderpipe_common.model import MAX_BATCH_BODY_BYTES, MAX_ORDER_BODY_BYTES
from orderpipe_common.observability import REQUEST_ID_ATTRIBUTE
from orderpipe_devenv.lambda_events import LocalLambdaContext, ProxyResponse, proxy_response, rest_proxy_event
from orderpipe_devenv.processes import free_port
from orderpipe_ingest import publisher
from orderpipe_ingest.handler import lambda_handler
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import order_payload
from tests.fixtures.aws import IngestEnv

JSON = {"Content-Type": "application/json"}


PRODUCER = "producer-a"
# The authorizer's context for PRODUCER (the gateway adds it; the body never names a producer).
AUTHORIZED = authorizer_context(PRODUCER, [SCOPE_WRITE])


def post(
    path: str,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
    raw: str | bytes | None = None,
    producer: str | None = PRODUCER,
    request_id: str | None = None,
) -> ProxyResponse:
    event = rest_proxy_event(
        "POST",
        path,
        headers={**JSON, **(headers or {})},
        body=raw if raw is not None else json.dumps(body),
        resource=path,
        authorizer=authorizer_context(producer, [SCOPE_WRITE]) if producer else None,
        request_id=request_id,
    )
    return proxy_response(lambda_handler(event, LocalLambdaContext(function_name="orderpipe-ingest")))


def assert_error(response: ProxyResponse, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status == status, response.body
    error = response.json()["error"]
    if code:
        assert error["code"] == code
    assert "Traceback" not in response.body
    return dict(error)


class FlakyBatchClient:
    """The real (moto-backed) SQS client, but SendMessageBatch fails chosen entries the first N calls."""

    def __init__(self, real: Any, *, fail_ids: set[str], failing_calls: int) -> None:
        self._real = real
        self.fail_ids = fail_ids
        self.failing_calls = failing_calls
        self.calls: list[list[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append([entry["Id"] for entry in Entries])
        if len(self.calls) > self.failing_calls:
            return dict(self._real.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))
        passing = [entry for entry in Entries if entry["Id"] not in self.fail_ids]
        answer = dict(self._real.send_message_batch(QueueUrl=QueueUrl, Entries=passing)) if passing else {}
        failed = [
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
            for entry in Entries
            if entry["Id"] in self.fail_ids
        ]
        return {"Successful": answer.get("Successful", []), "Failed": failed}


def real_sqs_client() -> Any:
    return publisher.sqs_client_for(Deadline.after(10))


@contextmanager
def sqs_client_replaced_by(client: Any) -> Iterator[None]:
    """The ingest's publisher uses `client` (undone before the ingest_env fixture resets its state)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publisher, "sqs_client_for", lambda _deadline: client)
        reset_process_state()
        yield
    reset_process_state()


@pytest.fixture
def flaky_sqs(ingest_env: IngestEnv) -> Iterator[FlakyBatchClient]:
    client = FlakyBatchClient(real_sqs_client(), fail_ids={"1", "3"}, failing_calls=1)
    with sqs_client_replaced_by(client):
        yield client


@pytest.fixture
def sqs_down(ingest_env: IngestEnv, monkeypatch: pytest.MonkeyPatch) -> IngestEnv:
    """SQS at a closed port (DynamoDB still reachable)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{free_port()}")
    reset_process_state()
    return ingest_env


# --- POST /orders ---------------------------------------------------------------------------------


def test_an_order_is_accepted_and_its_message_is_the_contract(ingest_env: IngestEnv) -> None:
    # Given a valid order with prices floats cannot hold, sent as JSON numbers
    payload = order_payload(7, items=2, with_address=True)
    payload["items"][0]["unit_price"] = Decimal("0.10")
    payload["items"][1]["unit_price"] = Decimal("1234567890.07")
    raw = (
        json.dumps(payload, default=str).replace('"0.10"', "0.10").replace('"1234567890.07"', "1234567890.07")
    )
    # When it is posted
    response = post("/orders", None, raw=raw)
    # Then 202 names the order, and Location points at it
    assert response.status == 202, response.body
    answer = response.json()
    assert answer["status"] == "accepted"
    assert response.headers["location"] == f"/orders/{answer['order_id']}"
    # And exactly one message is on the queue, carrying the order exactly
    [message] = ingest_env.messages()
    assert json.loads(message["Body"])["schema_version"] == 2
    order = parse_envelope(message["Body"])
    assert str(order.order_id) == answer["order_id"]
    assert [item.unit_price for item in order.items] == [Decimal("0.10"), Decimal("1234567890.07")]
    expected = json.loads(json.dumps(payload, default=str))  # prices as their exact strings
    assert (
        order.model_dump(exclude={"order_id", "accepted_at", "producer"}, exclude_none=True, mode="json")
        == expected
    )
    assert order.accepted_at.tzinfo is not None


@pytest.mark.parametrize(("path", "count"), [("/orders", 1), ("/orders/batch", 12)])
def test_every_message_carries_the_api_request_id(ingest_env: IngestEnv, path: str, count: int) -> None:
    # Given a POST whose API Gateway request id is known
    payloads = [order_payload(i) for i in range(count)]
    body = payloads[0] if path == "/orders" else payloads
    # When it is accepted
    response = post(path, body, request_id="req-0f5e")
    assert response.status == 202, response.body
    # Then each message it enqueued names that request (what the writer logs with the order)
    messages = ingest_env.messages()
    assert len(messages) == count
    assert {m["MessageAttributes"][REQUEST_ID_ATTRIBUTE]["StringValue"] for m in messages} == {"req-0f5e"}


def test_content_type_with_charset_is_accepted(ingest_env: IngestEnv) -> None:
    response = post("/orders", order_payload(1), headers={"content-type": "application/json; charset=UTF-8"})
    assert response.status == 202
    assert len(ingest_env.messages()) == 1


# --- POST /orders/batch ---------------------------------------------------------------------------


def test_a_batch_with_some_invalid_orders_enqueues_only_the_valid_ones(ingest_env: IngestEnv) -> None:
    orders = [order_payload(i) for i in range(12)]
    orders[3] = {**orders[3], "currency": "EURO"}
    orders[10] = {**orders[10], "items": [{"sku": "A", "quantity": 0, "unit_price": "1"}]}
    response = post("/orders/batch", orders)
    assert response.status == 202, response.body
    answer = response.json()
    assert (answer["accepted"], answer["rejected"], answer["failed"]) == (10, 2, 0)
    assert answer["results"][3]["status"] == "rejected"
    assert "order_id" not in answer["results"][3]
    assert [e["field"] for e in answer["results"][3]["errors"]] == ["currency"]
    assert [e["field"] for e in answer["results"][10]["errors"]] == ["items.0.quantity"]
    accepted_ids = {r["order_id"] for r in answer["results"] if r["status"] == "accepted"}
    on_queue = {str(parse_envelope(m["Body"]).order_id) for m in ingest_env.messages()}
    assert on_queue == accepted_ids
    assert len(accepted_ids) == 10


def test_entries_sqs_fails_inside_a_batch_are_retried_and_then_accepted(
    ingest_env: IngestEnv, flaky_sqs: FlakyBatchClient
) -> None:
    # Given SQS fails entries 1 and 3 of the first SendMessageBatch call
    response = post("/orders/batch", [order_payload(i) for i in range(5)])
    # Then they were sent again and every order is accepted, each exactly once on the queue
    assert response.status == 202, response.body
    assert flaky_sqs.calls == [["0", "1", "2", "3", "4"], ["1", "3"]]
    answer = response.json()
    assert answer["accepted"] == 5
    on_queue = [str(parse_envelope(m["Body"]).order_id) for m in ingest_env.messages()]
    assert sorted(on_queue) == sorted(r["order_id"] for r in answer["results"])


def test_entries_sqs_keeps_failing_are_reported_failed_not_accepted(
    ingest_env: IngestEnv, flaky_sqs: FlakyBatchClient
) -> None:
    flaky_sqs.failing_calls = 100
    response = post("/orders/batch", [order_payload(i) for i in range(4)])
    assert response.status == 202
    answer = response.json()
    assert [r["status"] for r in answer["results"]] == ["accepted", "failed", "accepted", "failed"]
    assert len(ingest_env.messages()) == 2


def test_a_batch_without_valid_orders_is_422_and_enqueues_nothing(ingest_env: IngestEnv) -> None:
    response = post("/orders/batch", [{"customer_id": "c"}, {**order_payload(1), "extra": True}])
    error = assert_error(response, 422, "batch_rejected")
    assert "1.extra" in {f["field"] for f in error["fields"]}
    assert ingest_env.messages() == []


@pytest.mark.parametrize("body", [{"orders": []}, [], [order_payload(0)] * 101])
def test_a_batch_body_that_is_not_1_to_100_orders_is_422(ingest_env: IngestEnv, body: Any) -> None:
    assert_error(post("/orders/batch", body), 422)
    assert ingest_env.messages() == []


# --- Idempotency-Key ------------------------------------------------------------------------------


def test_the_same_key_and_body_twice_gives_the_same_answer_and_one_message(ingest_env: IngestEnv) -> None:
    payload = order_payload(3)
    first = post("/orders", payload, headers={"Idempotency-Key": "retry-me"})
    second = post("/orders", payload, headers={"Idempotency-Key": "retry-me"})
    assert first.status == second.status == 202
    assert first.json() == second.json()
    assert first.headers["location"] == second.headers["location"]
    assert len(ingest_env.messages()) == 1


def test_the_same_key_with_another_body_is_a_409_without_retry_after_and_enqueues_nothing_new(
    ingest_env: IngestEnv,
) -> None:
    # Given an order accepted under a key
    assert post("/orders", order_payload(3), headers={"Idempotency-Key": "k"}).status == 202
    # When another order is posted under the same key
    response = post("/orders", order_payload(4), headers={"Idempotency-Key": "k"})
    # Then it conflicts with what the key stands for: a 409 that says so, with nothing to wait for
    error = assert_error(response, 409, "idempotency_key_reused")
    assert error["fields"][0]["type"] == "idempotency_key_reused"
    assert "retry-after" not in response.headers
    assert len(ingest_env.messages()) == 1


def test_a_batch_replayed_with_its_key_enqueues_nothing_new(ingest_env: IngestEnv) -> None:
    orders = [order_payload(i) for i in range(3)]
    first = post("/orders/batch", orders, headers={"Idempotency-Key": "b1"})
    second = post("/orders/batch", orders, headers={"Idempotency-Key": "b1"})
    assert first.json() == second.json()
    assert len(ingest_env.messages()) == 3


def test_keys_are_scoped_to_the_route(ingest_env: IngestEnv) -> None:
    assert post("/orders", order_payload(1), headers={"Idempotency-Key": "same"}).status == 202
    assert post("/orders/batch", [order_payload(1)], headers={"Idempotency-Key": "same"}).status == 202
    assert len(ingest_env.messages()) == 2


def test_without_a_key_each_post_is_a_new_order(ingest_env: IngestEnv) -> None:
    payload = order_payload(5)
    assert post("/orders", payload).json() != post("/orders", payload).json()
    assert len(ingest_env.messages()) == 2


def test_a_failure_is_not_remembered_under_the_key(
    sqs_down: IngestEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SQS is down: the first attempt gets 503
    payload = order_payload(9)
    assert_error(post("/orders", payload, headers={"Idempotency-Key": "later"}), 503)
    # When SQS is back and the producer retries with the same key
    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS")
    reset_process_state()
    retried = post("/orders", payload, headers={"Idempotency-Key": "later"})
    # Then the order is accepted now (the 503 was not replayed)
    assert retried.status == 202
    assert len(sqs_down.messages()) == 1


class LosesTheAnswer:
    """SQS takes the message, but the client never hears back (a read timeout after the send)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def send_message(self, **kwargs: Any) -> Any:
        self._real.send_message(**kwargs)
        raise ReadTimeoutError(endpoint_url=kwargs["QueueUrl"])


def test_a_retry_after_a_lost_answer_sends_the_same_order_again_not_a_new_one(ingest_env: IngestEnv) -> None:
    # Given SQS takes the message but its answer is lost: the producer gets a 503
    payload = order_payload(11)
    with sqs_client_replaced_by(LosesTheAnswer(real_sqs_client())):
        assert_error(post("/orders", payload, headers={"Idempotency-Key": "lost"}), 503)
    # When the producer retries with the same key and body
    retried = post("/orders", payload, headers={"Idempotency-Key": "lost"})
    # Then the retry is accepted, and both messages carry the same order_id: the writer upserts one order
    assert retried.status == 202
    order_ids = {parse_envelope(m["Body"]).order_id for m in ingest_env.messages()}
    assert order_ids == {uuid.UUID(retried.json()["order_id"])}


def test_a_key_reused_after_its_window_with_another_body_is_a_new_order(ingest_env: IngestEnv) -> None:
    # Given an order accepted under a key whose idempotency record has expired (deleted here)
    first = post("/orders", order_payload(12), headers={"Idempotency-Key": "reused"})
    ingest_env.expire_idempotency_records()
    # When the same key comes with another order
    second = post("/orders", order_payload(13), headers={"Idempotency-Key": "reused"})
    # Then it is a new order with its own id: it can never overwrite the first
    assert first.status == second.status == 202
    assert first.json()["order_id"] != second.json()["order_id"]


def test_a_concurrent_request_with_the_same_key_is_409_with_retry_after(ingest_env: IngestEnv) -> None:
    payload = order_payload(11)
    inner: list[ProxyResponse] = []
    real = real_sqs_client()

    class SendsWhileInProgress:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def send_message(self, **kwargs: Any) -> Any:
            # While the first request is between "in progress" and done, the same key arrives again
            inner.append(post("/orders", payload, headers={"Idempotency-Key": "busy"}))
            return real.send_message(**kwargs)

    with sqs_client_replaced_by(SendsWhileInProgress()):
        outer = post("/orders", payload, headers={"Idempotency-Key": "busy"})
    assert outer.status == 202
    [concurrent] = inner
    assert_error(concurrent, 409, "conflict")
    assert concurrent.headers["retry-after"] == "1"
    assert len(ingest_env.messages()) == 1


@pytest.mark.parametrize("key", ["", "k" * 256, " k", "k ", "caf\u00e9", "tab\tkey"])
def test_an_invalid_key_is_400(ingest_env: IngestEnv, key: str) -> None:
    assert_error(post("/orders", order_payload(1), headers={"Idempotency-Key": key}), 400)
    assert ingest_env.messages() == []


# --- errors: nothing reaches the queue ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["{not json", '{"customer_id": "c",}', "", '{"a": NaN}', b"\xff\xfe binary", '{"a": Infinity}']
)
def test_malformed_json_is_400(ingest_env: IngestEnv, raw: str | bytes) -> None:
    error = assert_error(post("/orders", None, raw=raw), 400, "malformed_json")
    assert error["message"]
    assert ingest_env.messages() == []


def _raw_order(seed: int) -> str:
    return json.dumps(order_payload(seed, items=1))


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/orders", _raw_order(1)[:-1] + ', "currency": "USD"}', "currency"),
        (
            "/orders",
            _raw_order(1).replace('"quantity": ', '"quantity": 5, "quantity": ', 1),
            "items.0.quantity",
        ),
        (
            "/orders/batch",
            f'[{_raw_order(1)}, {_raw_order(2)[:-1]}, "customer_id": "c-2"}}]',
            "1.customer_id",
        ),
    ],
    ids=["top level", "nested", "second order of a batch"],
)
def test_an_object_repeating_a_key_is_400_naming_it(
    ingest_env: IngestEnv, path: str, raw: str, field: str
) -> None:
    # Given a body in which one object repeats a key (Python's json would keep the last value)
    # When it is posted, Then it is refused as ambiguous, naming where, and nothing is enqueued
    error = assert_error(post(path, None, raw=raw), 400, "malformed_json")
    assert error["fields"] == [
        {"field": field, "message": error["fields"][0]["message"], "type": "json_duplicate_key"}
    ]
    assert ingest_env.messages() == []


def test_an_invalid_order_is_422_naming_each_field(ingest_env: IngestEnv) -> None:
    payload = {**order_payload(1), "currency": "XXXX", "surprise": 1}
    payload["items"] = [{"sku": "A", "quantity": 0, "unit_price": "1.001"}]
    error = assert_error(post("/orders", payload), 422)
    assert {f["field"] for f in error["fields"]} == {
        "currency",
        "surprise",
        "items.0.quantity",
        "items.0.unit_price",
    }
    assert ingest_env.messages() == []


@pytest.mark.parametrize(
    ("path", "limit"), [("/orders", MAX_ORDER_BODY_BYTES), ("/orders/batch", MAX_BATCH_BODY_BYTES)]
)
def test_a_body_over_the_limit_is_413(ingest_env: IngestEnv, path: str, limit: int) -> None:
    # Not even valid JSON: the size is checked before parsing
    assert_error(post(path, None, raw="[" + " " * limit + "]"), 413, "payload_too_large")
    assert ingest_env.messages() == []


def test_a_base64_body_over_the_limit_is_413(ingest_env: IngestEnv) -> None:
    event = rest_proxy_event(
        "POST",
        "/orders",
        headers=JSON,
        body=b"{" + b" " * MAX_ORDER_BODY_BYTES + b"}",
        base64_encode=True,
        authorizer=AUTHORIZED,
    )
    assert_error(proxy_response(lambda_handler(event, LocalLambdaContext())), 413)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_a_wrong_content_type_is_415(ingest_env: IngestEnv, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    event = rest_proxy_event(
        "POST", "/orders", headers=headers, body=json.dumps(order_payload(1)), authorizer=AUTHORIZED
    )
    assert_error(proxy_response(lambda_handler(event, LocalLambdaContext())), 415, "unsupported_media_type")
    assert ingest_env.messages() == []


@pytest.mark.parametrize("path", ["/orders", "/orders/batch"])
def test_sqs_unreachable_is_503_with_retry_after(sqs_down: IngestEnv, path: str) -> None:
    body = order_payload(1) if path == "/orders" else [order_payload(1), order_payload(2)]
    response = post(path, body)
    assert_error(response, 503, "queue_unavailable")
    assert int(response.headers["retry-after"]) > 0
    # The queue itself (reached without the broken endpoint) holds nothing
    assert sqs_down.messages() == []


def test_unknown_routes_are_404(ingest_env: IngestEnv) -> None:
    event = rest_proxy_event("GET", "/nowhere", headers=JSON, authorizer=AUTHORIZED)
    assert_error(proxy_response(lambda_handler(event, LocalLambdaContext())), 404, "not_found")


# --- producers ----------------------------------------------------------------------------------


def test_an_order_names_its_producer_and_is_queued_in_its_fair_group(ingest_env: IngestEnv) -> None:
    # Given producer-a's order
    response = post("/orders", order_payload(1))
    # Then the enqueued order names producer-a and the message's group is producer-a
    assert response.status == 202
    [message] = ingest_env.messages()
    assert parse_envelope(message["Body"]).producer == PRODUCER
    assert message["Attributes"].get("MessageGroupId") == PRODUCER


def test_the_longest_producer_name_is_queued_in_a_group_sqs_accepts(ingest_env: IngestEnv) -> None:
    # Given a producer whose name is the 256 characters a name may have (SQS takes 128 in a group id)
    producer = "p" * 256
    # When it posts an order
    response = post("/orders", order_payload(1), producer=producer)
    # Then the order names the whole producer and its message's group is the producer's hashed group
    assert response.status == 202
    [message] = ingest_env.messages()
    assert parse_envelope(message["Body"]).producer == producer
    assert message["Attributes"].get("MessageGroupId") == publisher.fair_group_id(producer)
    assert len(message["Attributes"]["MessageGroupId"]) <= 128


def test_the_same_key_and_body_from_two_producers_are_two_orders(ingest_env: IngestEnv) -> None:
    # Given two producers that use the same Idempotency-Key for the same body
    payload = order_payload(9)
    first = post("/orders", payload, headers={"Idempotency-Key": "1"}, producer="producer-a")
    second = post("/orders", payload, headers={"Idempotency-Key": "1"}, producer="producer-b")
    # Then neither sees the other's answer: two orders, two messages, each its producer's
    assert first.status == second.status == 202
    assert first.json()["order_id"] != second.json()["order_id"]
    orders = {
        parse_envelope(m["Body"]).producer: str(parse_envelope(m["Body"]).order_id)
        for m in ingest_env.messages()
    }
    assert orders == {"producer-a": first.json()["order_id"], "producer-b": second.json()["order_id"]}


def test_a_request_without_producer_identity_is_401_and_enqueues_nothing(ingest_env: IngestEnv) -> None:
    # Given a request that reached the function with no authorizer context and no IAM identity
    response = post("/orders", order_payload(1), producer=None)
    # Then it is refused, not served anonymously
    assert_error(response, 401, "unauthenticated")
    assert ingest_env.messages() == []


def test_a_producer_named_in_the_body_is_422(ingest_env: IngestEnv) -> None:
    error = assert_error(post("/orders", {**order_payload(1), "producer": "someone-else"}), 422)
    assert any(field["field"] == "producer" for field in error["fields"])
    assert ingest_env.messages() == []
