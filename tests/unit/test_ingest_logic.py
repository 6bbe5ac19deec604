"""Ingest logic with a fake queue: validation, ids, chunking, retries of failed entries. No network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from orderpipe_common.envelope import parse_envelope
from orderpipe_common.identity import Caller
from orderpipe_ingest.logic import BatchRejectedError, accept_batch, accept_order
from orderpipe_ingest.publisher import FailedEntry, QueueUnavailableError
from orderpipe_testkit.sample_orders import order_payload


class FakeQueue:
    """Takes messages like SQS; can fail whole calls or chosen entries for a number of calls."""

    def __init__(
        self, *, down: bool = False, fail_entries_for_calls: int = 0, fail_ids: set[str] | None = None
    ):
        self.down = down
        self.fail_entries_for_calls = fail_entries_for_calls
        self.fail_ids = fail_ids
        self.sender_fault_ids: set[str] = set()
        self.bodies: list[str] = []
        self.batch_calls: list[list[str]] = []
        self.groups: list[str | None] = []

    def send(self, body: str, *, group: str | None = None) -> None:
        if self.down:
            raise QueueUnavailableError("down")
        self.bodies.append(body)
        self.groups.append(group)

    def send_batch(self, entries: Mapping[str, str], *, group: str | None = None) -> Sequence[FailedEntry]:
        assert len(entries) <= 10
        self.groups.append(group)
        self.batch_calls.append(list(entries))
        if self.down:
            raise QueueUnavailableError("down")
        failed: list[FailedEntry] = []
        failing = len(self.batch_calls) <= self.fail_entries_for_calls
        for entry_id, body in entries.items():
            if entry_id in self.sender_fault_ids:
                failed.append(FailedEntry(entry_id, "InvalidMessageContents", sender_fault=True))
            elif failing and (self.fail_ids is None or entry_id in self.fail_ids):
                failed.append(FailedEntry(entry_id, "InternalError", sender_fault=False))
            else:
                self.bodies.append(body)
        return failed


def no_sleep(_: float) -> None:
    return None


CALLER = Caller(producer="acme", read_all=False, request_id="req-1", source_ip="127.0.0.1")


def batch(payload: Any, queue: FakeQueue, **kwargs: Any) -> Any:
    return accept_batch(payload, queue, caller=CALLER, sleep=no_sleep, **kwargs)


def test_a_valid_order_is_enqueued_in_an_envelope_with_its_id() -> None:
    queue = FakeQueue()
    answer = accept_order(order_payload(1), queue, caller=CALLER)
    assert answer.status == "accepted"
    [body] = queue.bodies
    assert parse_envelope(body).order_id == answer.order_id


def test_prices_reach_the_queue_exactly() -> None:
    queue = FakeQueue()
    payload = order_payload(2, items=1)
    payload["items"][0]["unit_price"] = Decimal("0.30")
    accept_order(payload, queue, caller=CALLER)
    assert parse_envelope(queue.bodies[0]).items[0].unit_price == Decimal("0.30")


def test_an_invalid_order_raises_and_enqueues_nothing() -> None:
    queue = FakeQueue()
    with pytest.raises(ValidationError):
        accept_order({**order_payload(1), "currency": "ZZZ"}, queue, caller=CALLER)
    assert queue.bodies == []


def test_a_queue_outage_raises_queue_unavailable_and_accepts_nothing() -> None:
    # Given a queue that is down
    queue = FakeQueue(down=True)
    # When an order is accepted, Then the domain error says the queue is unavailable (the handler
    # maps it to 503 + Retry-After: tests/integration/test_ingest_api.py) and nothing was enqueued
    with pytest.raises(QueueUnavailableError, match="down"):
        accept_order(order_payload(1), queue, caller=CALLER)
    assert queue.bodies == []


def test_a_batch_is_sent_in_chunks_of_ten_and_answered_by_index() -> None:
    queue = FakeQueue()
    answer = batch([order_payload(i) for i in range(23)], queue)
    assert sorted(len(call) for call in queue.batch_calls) == [3, 10, 10]
    assert (answer.accepted, answer.rejected, answer.failed) == (23, 0, 0)
    assert [result.index for result in answer.results] == list(range(23))
    enqueued_ids = {parse_envelope(body).order_id for body in queue.bodies}
    assert enqueued_ids == {result.order_id for result in answer.results}


def test_invalid_orders_of_a_batch_are_rejected_alone_with_their_fields() -> None:
    queue = FakeQueue()
    orders = [order_payload(0), {**order_payload(1), "currency": "EURO"}, order_payload(2), {"nope": 1}]
    answer = batch(orders, queue)
    assert [r.status for r in answer.results] == ["accepted", "rejected", "accepted", "rejected"]
    assert answer.results[1].errors is not None
    assert [e.field for e in answer.results[1].errors] == ["currency"]
    assert answer.results[1].order_id is None
    assert len(queue.bodies) == 2


def test_entries_the_queue_fails_are_retried_until_taken() -> None:
    # Given a queue that fails entries 1 and 4 on the first call
    queue = FakeQueue(fail_entries_for_calls=1, fail_ids={"1", "4"})
    answer = batch([order_payload(i) for i in range(6)], queue)
    # Then they were sent again, alone, and everything was accepted exactly once
    assert queue.batch_calls == [["0", "1", "2", "3", "4", "5"], ["1", "4"]]
    assert answer.accepted == 6
    assert len(queue.bodies) == 6
    assert len({parse_envelope(body).order_id for body in queue.bodies}) == 6


def test_entries_still_failing_after_the_last_attempt_are_reported_failed_not_accepted() -> None:
    queue = FakeQueue(fail_entries_for_calls=100, fail_ids={"0"})
    answer = batch([order_payload(i) for i in range(3)], queue, max_send_attempts=3)
    assert len(queue.batch_calls) == 3
    assert answer.results[0].status == "failed"
    assert answer.results[0].order_id is None
    assert (answer.accepted, answer.failed) == (2, 1)


def test_entries_refused_by_sender_fault_are_not_retried() -> None:
    queue = FakeQueue()
    queue.sender_fault_ids = {"1"}
    answer = batch([order_payload(i) for i in range(2)], queue)
    assert len(queue.batch_calls) == 1
    assert [r.status for r in answer.results] == ["accepted", "failed"]


class AnswerLostQueue(FakeQueue):
    """Takes every message, but the answer to the first call holding `lost_entry` never arrives
    (a read timeout or a reset after SQS queued the chunk)."""

    def __init__(self, lost_entry: str) -> None:
        super().__init__()
        self.lost_entry = lost_entry
        self.answer_lost = False

    def send_batch(self, entries: Mapping[str, str], *, group: str | None = None) -> Sequence[FailedEntry]:
        failed = super().send_batch(entries, group=group)
        if self.lost_entry in entries and not self.answer_lost:
            self.answer_lost = True
            raise QueueUnavailableError("read timeout")
        return failed


def test_a_keyed_batch_whose_queue_call_went_unanswered_is_refused_and_its_retry_stores_no_order_twice() -> (
    None
):
    # Given a keyed batch of 15 whose second chunk (orders 10-14) is queued but its call unanswered
    queue = AnswerLostQueue(lost_entry="10")
    orders = [order_payload(i) for i in range(15)]
    # When it is sent, Then the whole request is refused as worth retrying
    with pytest.raises(QueueUnavailableError, match="same Idempotency-Key"):
        batch(orders, queue, order_id_seed="seed-1")
    # When the producer sends the same request again (the same key and body give the same seed)
    answer = batch(orders, queue, order_id_seed="seed-1")
    # Then every order is accepted, and every copy on the queue carries one of those 15 ids
    assert answer.accepted == 15
    accepted_ids = {result.order_id for result in answer.results}
    assert len(accepted_ids) == 15
    assert len(queue.bodies) == 30
    assert {parse_envelope(body).order_id for body in queue.bodies} == accepted_ids


def test_an_unkeyed_batch_whose_queue_call_went_unanswered_answers_those_orders_failed() -> None:
    # Given a batch without a key (its order ids are random: repeating it would store copies)
    queue = AnswerLostQueue(lost_entry="10")
    # When the second chunk's call goes unanswered
    answer = batch([order_payload(i) for i in range(15)], queue)
    # Then the orders of the answered chunk are accepted and the others reported failed
    assert [result.status for result in answer.results] == ["accepted"] * 10 + ["failed"] * 5


def test_backoff_between_retry_rounds_is_bounded() -> None:
    waits: list[float] = []
    queue = FakeQueue(fail_entries_for_calls=100)
    with pytest.raises(QueueUnavailableError):
        accept_batch([order_payload(0)], queue, caller=CALLER, max_send_attempts=5, sleep=waits.append)
    assert len(waits) == 4
    assert all(0 <= wait <= 1.0 for wait in waits)


def test_a_batch_nobody_could_enqueue_raises_service_unavailable() -> None:
    with pytest.raises(QueueUnavailableError):
        batch([order_payload(0), order_payload(1)], FakeQueue(down=True))


def test_a_batch_without_valid_orders_is_rejected_naming_index_and_field() -> None:
    queue = FakeQueue()
    with pytest.raises(BatchRejectedError) as caught:
        batch([{**order_payload(0), "currency": "no"}, {**order_payload(1), "customer_id": ""}], queue)
    assert {f["field"] for f in caught.value.fields or []} == {"0.currency", "1.customer_id"}
    assert queue.batch_calls == []


@pytest.mark.parametrize("payload", [{"orders": []}, [], "text", [order_payload(0)] * 101])
def test_a_body_that_is_not_an_array_of_1_to_100_orders_is_rejected(payload: Any) -> None:
    queue = FakeQueue()
    with pytest.raises(BatchRejectedError) as caught:
        batch(payload, queue)
    assert [f["field"] for f in caught.value.fields or []] == ["body"]
    assert queue.batch_calls == []


def test_orders_carry_the_callers_producer_and_queue_in_its_fair_group() -> None:
    # Given a producer's single order and batch
    queue = FakeQueue()
    # When both are accepted
    accept_order(order_payload(1), queue, caller=CALLER)
    batch([order_payload(2), order_payload(3)], queue)
    # Then every enqueued order names the producer, and every send uses it as the message group
    assert {parse_envelope(body).producer for body in queue.bodies} == {"acme"}
    assert set(queue.groups) == {"acme"}


def test_a_producer_field_in_the_body_is_refused() -> None:
    # Given a body that names a producer itself
    queue = FakeQueue()
    # When it is posted, Then it is invalid (the producer comes from the gateway only) and not enqueued
    with pytest.raises(ValidationError):
        accept_order({**order_payload(1), "producer": "someone-else"}, queue, caller=CALLER)
    assert queue.bodies == []


def test_a_batch_queues_the_same_bytes_as_single_posts_and_the_long_way() -> None:
    # Given two orders, a fixed moment and an idempotency seed (so that order ids are known)
    from datetime import UTC, datetime

    from orderpipe_common.envelope import wrap
    from orderpipe_common.model import Order, OrderRequest
    from orderpipe_ingest.logic import derived_order_id

    moment = datetime(2026, 11, 24, 23, 0, 0, 123_456, tzinfo=UTC)
    first, second = order_payload(31, with_address=True), order_payload(32)
    batch_queue, single_queue = FakeQueue(), FakeQueue()
    # When they are posted as a batch, and the first one on its own
    accept_batch([first, second], batch_queue, caller=CALLER, now=lambda: moment, order_id_seed="seed")
    accept_order(first, single_queue, caller=CALLER, now=lambda: moment, order_id_seed="seed")
    # Then the batch's first message is the single POST's, byte for byte, and each message is what
    # validating the request and then accepting it as an order gives
    assert batch_queue.bodies[0] == single_queue.bodies[0]
    assert batch_queue.bodies == [
        wrap(
            Order.accept(
                OrderRequest.model_validate(payload),
                producer=CALLER.producer,
                now=moment,
                order_id=derived_order_id("seed", index),
            )
        )
        for index, payload in enumerate([first, second])
    ]
