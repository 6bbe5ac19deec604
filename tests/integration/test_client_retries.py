"""The producer client against a scripted API on 127.0.0.1: retries, back-off, keys, batches, reads.

The scripted API validates with the real order model and derives order ids from route + key + body
as ingest does, so "stored once" here means what it means in Cassandra: one order id per order.
Timings: only the waits the server asked for are checked, with generous upper bounds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from itertools import pairwise

import pytest

from orderpipe_client import (
    OrderNotReadableError,
    OrderpipeClient,
    OrderRejectedError,
    RetryPolicy,
    SubmitFailedError,
)
from tests.scripted_orders_api import (
    Answer,
    Delay,
    Drop,
    DropAfterProcessing,
    FailItems,
    ReceivedRequest,
    ScriptedOrdersApi,
    order,
)

pytestmark = pytest.mark.timeout(120)

# Retry-After the scripted answers give, and how late a retry may come on a busy 2-core machine.
RETRY_AFTER = 1
SLACK = 3.0
FAST = RetryPolicy(max_attempts=5, base_delay=0.05, max_delay=0.2, deadline=30)


@pytest.fixture
def api() -> Iterator[ScriptedOrdersApi]:
    server = ScriptedOrdersApi(api_key="key")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(api: ScriptedOrdersApi) -> Iterator[OrderpipeClient]:
    with OrderpipeClient(api.url, api_key="key", retry=FAST, max_connections=4) as client:
        yield client


def gaps(requests: list[ReceivedRequest]) -> list[float]:
    return [later.at - earlier.at for earlier, later in pairwise(requests)]


def assert_each_reference_stored_once(api: ScriptedOrdersApi, references: set[str]) -> None:
    stored = api.stored_by_reference()
    assert set(stored) == references
    twice = {reference: ids for reference, ids in stored.items() if len(ids) != 1}
    assert not twice, f"stored under more than one id: {twice}"


# -- one order -------------------------------------------------------------------------------------


def test_503_and_429_are_retried_after_retry_after_with_the_same_key_and_body(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given an API that answers 503 then 429, each with Retry-After: 1, then takes the order
    api.script = [Answer(503, RETRY_AFTER), Answer(429, RETRY_AFTER)]
    # When one order is submitted
    accepted = client.submit(order("po-1"))
    # Then it was sent three times, each time the same key and body, at least Retry-After apart
    posts = api.posts("/orders")
    assert [post.outcome for post in posts] == ["503", "429", "202"]
    assert len({post.key for post in posts}) == 1 and posts[0].key is not None
    assert len({post.body for post in posts}) == 1
    assert all(RETRY_AFTER - 0.05 <= gap <= RETRY_AFTER + SLACK for gap in gaps(posts)), gaps(posts)
    # And it was stored once, under the id the answer gave
    assert api.stored_by_reference() == {"po-1": {accepted.order_id}}


def test_a_409_in_progress_is_waited_out_and_answered_by_the_replay(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given an answer lost after the order was taken, then a 409 while "the first request still runs"
    api.script = [DropAfterProcessing(), Answer(409, RETRY_AFTER)]
    # When the order is submitted
    accepted = client.submit(order("po-1"))
    # Then the third request got the first one's answer: one order, stored once
    posts = api.posts("/orders")
    assert [post.outcome for post in posts] == ["dropped", "409", "202"]
    assert gaps(posts)[1] >= RETRY_AFTER - 0.05
    assert api.stored_by_reference() == {"po-1": {accepted.order_id}}
    assert api.stores == 1


def test_a_connection_dropped_before_the_answer_is_retried_and_stored_once(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given an API that drops the first two connections without answering
    api.script = [Drop(), Drop()]
    # When one order is submitted
    accepted = client.submit(order("po-1"))
    # Then the same request was sent three times and the order stored once
    posts = api.posts("/orders")
    assert [post.outcome for post in posts] == ["dropped", "dropped", "202"]
    assert len({(post.key, post.body) for post in posts}) == 1
    assert api.stored_by_reference() == {"po-1": {accepted.order_id}}


def test_after_the_idempotency_window_a_resend_still_gets_the_same_order_id(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given an order stored whose answer was lost, and a server that has forgotten the key by the retry
    api.script = [DropAfterProcessing()]
    api.on_request = lambda request: api.forget_keys() if len(api.posts()) == 2 else None
    # When the client retries
    accepted = client.submit(order("po-1"))
    # Then the server processed it twice, under the same derived id: one order (an upsert)
    assert api.stores == 2
    assert api.stored_by_reference() == {"po-1": {accepted.order_id}}


@pytest.mark.parametrize("status", [400, 413, 415, 422])
def test_refusals_are_not_retried(api: ScriptedOrdersApi, client: OrderpipeClient, status: int) -> None:
    # Given an API that refuses the request
    api.script = [Answer(status, RETRY_AFTER)]
    # When an order is submitted, Then it is refused at once, after one request
    with pytest.raises(OrderRejectedError) as refused:
        client.submit(order("po-1"))
    assert refused.value.status == status
    assert len(api.posts()) == 1


def test_an_invalid_order_is_refused_with_its_field_errors_after_one_request(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given an order with a quantity of 0 (the real model refuses it)
    with pytest.raises(OrderRejectedError) as refused:
        client.submit(order("po-1", quantity=0))
    # Then the refusal names the field, and nothing was retried or stored
    assert refused.value.status == 422
    assert [error.field for error in refused.value.errors] == ["items.0.quantity"]
    assert len(api.posts()) == 1
    assert api.stored == {}


def test_retries_stop_after_max_attempts(api: ScriptedOrdersApi) -> None:
    # Given an API that always answers 503 with Retry-After: 0
    api.script = [Answer(503, 0)] * 10
    client = OrderpipeClient(api.url, api_key="key", retry=RetryPolicy(max_attempts=3, base_delay=0.01))
    # When an order is submitted, Then it fails after exactly three requests, saying so
    with pytest.raises(SubmitFailedError, match="after 3 attempts") as failed:
        client.submit(order("po-1"))
    assert failed.value.last_status == 503
    assert len(api.posts()) == 3
    client.close()


def test_a_retry_after_beyond_the_deadline_ends_the_call_instead_of_waiting(api: ScriptedOrdersApi) -> None:
    # Given a 503 asking for 60 s, and a client whose calls may take 5 s in all
    api.script = [Answer(503, 60)]
    client = OrderpipeClient(api.url, api_key="key", retry=RetryPolicy(deadline=5))
    started = time.monotonic()
    # When an order is submitted
    with pytest.raises(SubmitFailedError, match="past the deadline"):
        client.submit(order("po-1"))
    # Then it gave up after the one request instead of waiting a minute
    assert len(api.posts()) == 1
    assert time.monotonic() - started < 5
    client.close()


def test_the_api_key_goes_with_every_request(api: ScriptedOrdersApi, client: OrderpipeClient) -> None:
    api.script = [Answer(503, 0)]
    client.submit(order("po-1"))
    assert [post.headers.get("x-api-key") for post in api.posts()] == ["key", "key"]


# -- batches ---------------------------------------------------------------------------------------


def test_a_batch_resends_only_its_failed_items_under_a_new_key(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given a batch of five whose items 1 and 3 the queue does not take the first time
    orders = [order(f"po-{n}") for n in range(5)]
    api.script = [FailItems(frozenset({1, 3}))]
    # When the batch is submitted
    outcomes = client.submit_batch(orders)
    # Then the second request carried exactly items 1 and 3, under another key
    first, second = api.posts("/orders/batch")
    assert [item["client_reference"] for item in second.json()] == ["po-1", "po-3"]
    assert second.key != first.key
    # And every order was accepted, in order, and stored once
    assert [(o.index, o.status) for o in outcomes] == [(n, "accepted") for n in range(5)]
    assert_each_reference_stored_once(api, {f"po-{n}" for n in range(5)})
    stored = api.stored_by_reference()
    assert [o.order_id for o in outcomes] == [next(iter(stored[f"po-{n}"])) for n in range(5)]


def test_a_batch_answered_503_is_sent_again_whole_with_the_same_key(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    api.script = [Answer(503, RETRY_AFTER)]
    outcomes = client.submit_batch([order("po-1"), order("po-2")])
    first, second = api.posts("/orders/batch")
    assert (first.key, first.body) == (second.key, second.body)
    assert RETRY_AFTER - 0.05 <= second.at - first.at <= RETRY_AFTER + SLACK
    assert [o.status for o in outcomes] == ["accepted", "accepted"]


def test_a_batch_with_no_valid_order_maps_each_field_error_to_its_order(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given a batch whose orders are all invalid (the API answers 422 naming "<index>.<field>")
    outcomes = client.submit_batch([order("po-1", quantity=0), order("po-2", price="1.001")])
    # Then each order is rejected with its own field, after one request
    assert [o.status for o in outcomes] == ["rejected", "rejected"]
    assert [[e.field for e in o.errors] for o in outcomes] == [["items.0.quantity"], ["items.0.unit_price"]]
    assert len(api.posts()) == 1


def test_submit_many_answers_every_order_in_input_order_over_bounded_connections(
    api: ScriptedOrdersApi,
) -> None:
    # Given 250 orders of which every 50th is invalid, and an API that takes a moment per batch
    orders = [order(f"po-{n}", quantity=0 if n % 50 == 7 else 1) for n in range(250)]
    api.script = [Delay(0.3)] * 3
    # When they are submitted over at most two connections
    with OrderpipeClient(api.url, api_key="key", retry=FAST, max_connections=2) as client:
        outcomes = list(client.submit_many(orders, batch_size=100))
    # Then there is one outcome per order, in order: the invalid ones rejected by field, the rest accepted
    assert [o.index for o in outcomes] == list(range(250))
    rejected = [o.index for o in outcomes if o.status == "rejected"]
    assert rejected == [7, 57, 107, 157, 207]
    assert all(o.errors[0].field == "items.0.quantity" for o in outcomes if o.status == "rejected")
    assert all(o.order_id is not None for o in outcomes if o.status == "accepted")
    # And three batch requests were made, never more than two at once
    assert [len(post.json()) for post in api.posts("/orders/batch")] == [100, 100, 50]
    assert api.max_in_flight <= 2


def test_submitting_the_same_orders_again_stores_nothing_new(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given 150 orders submitted once
    orders = [order(f"po-{n}") for n in range(150)]
    first = list(client.submit_many(orders))
    # When they are submitted again, the second time after the server forgot every key
    second = list(client.submit_many(orders))
    api.forget_keys()
    third = list(client.submit_many(orders))
    # Then every run got the same order ids, and each order is stored once
    assert [o.order_id for o in first] == [o.order_id for o in second] == [o.order_id for o in third]
    assert_each_reference_stored_once(api, {f"po-{n}" for n in range(150)})


def test_no_order_is_sent_under_two_keys_through_drops_and_503s(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given an API that drops, loses answers and answers 503 across a run of 300 orders
    api.script = [Drop(), Answer(503, 0), DropAfterProcessing(), Answer(429, 0), Drop()]
    orders = [order(f"po-{n}") for n in range(300)]
    # When they are submitted in batches of 50
    outcomes = list(client.submit_many(orders, batch_size=50))
    # Then every order was accepted and stored once, and each order only ever travelled under one key
    assert {o.status for o in outcomes} == {"accepted"}
    assert_each_reference_stored_once(api, {f"po-{n}" for n in range(300)})
    keys_by_reference: dict[str, set[str | None]] = {}
    for post in api.posts("/orders/batch"):
        for item in post.json():
            keys_by_reference.setdefault(item["client_reference"], set()).add(post.key)
    assert {len(keys) for keys in keys_by_reference.values()} == {1}


# -- reads -----------------------------------------------------------------------------------------


def test_wait_until_readable_polls_as_the_404s_retry_after_says(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given an accepted order that the API reads back only on the third GET (404 + Retry-After: 1 before)
    api.readable_after_polls = 2
    accepted = client.submit(order("po-1"))
    # When the client waits for it
    stored = client.wait_until_readable(accepted.order_id, timeout=30)
    # Then it polled three times, Retry-After apart, and got the order
    gets = [r for r in api.requests if r.method == "GET"]
    assert len(gets) == 3
    assert all(RETRY_AFTER - 0.05 <= gap <= RETRY_AFTER + SLACK for gap in gaps(gets)), gaps(gets)
    assert stored.order_id == accepted.order_id
    assert stored.client_reference == "po-1"


def test_wait_until_readable_gives_up_at_its_timeout_polling_no_faster_than_retry_after(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given an id the API does not know (404 + Retry-After: 1 forever)
    unknown = uuid.uuid4()
    started = time.monotonic()
    # When the client waits 1.5 s for it, Then it gives up once the 1.5 s are over
    with pytest.raises(OrderNotReadableError):
        client.wait_until_readable(unknown, timeout=1.5)
    assert time.monotonic() - started >= 1.5
    # And it polled at most at 0 s, 1 s (Retry-After) and a last time at the deadline
    gets = [r for r in api.requests if r.method == "GET"]
    assert 2 <= len(gets) <= 3
    assert gaps(gets)[0] >= RETRY_AFTER - 0.05


def test_get_answers_none_while_unknown_and_refuses_a_non_uuid_before_sending(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    assert client.get(uuid.uuid4()) is None
    with pytest.raises(ValueError, match="badly formed"):
        client.get("not-a-uuid")
    assert len(api.requests) == 1


def test_leaving_submit_many_early_stops_batches_that_are_waiting_to_retry(
    api: ScriptedOrdersApi, client: OrderpipeClient
) -> None:
    # Given two batches in flight, the second told to come back in 20 s
    api.action_for = lambda request: Answer(503, 20) if b'"po-10"' in request.body else Delay(0.2)
    orders = [order(f"po-{n}") for n in range(20)]
    started = time.monotonic()
    # When the caller takes the first outcome and stops iterating
    for outcome in client.submit_many(orders, batch_size=10, max_connections=2):
        assert outcome.status == "accepted"
        break
    # Then the waiting batch was abandoned (not retried 20 s later), and only the first batch is stored
    assert time.monotonic() - started < 15
    assert len(api.posts()) == 2
    assert set(api.stored_by_reference()) == {f"po-{n}" for n in range(10)}
