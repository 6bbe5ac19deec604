"""Accepting orders: validate, assign an id, enqueue. Knows nothing of Lambda or HTTP events.

`accept_order` and `accept_batch` take the parsed JSON body (numbers as Decimal), the authenticated
`Caller` (its producer is stamped on every order and is the order's fair-queue group) and a
`QueuePublisher`. Each accepted request writes one audit line (producer, order ids, request id,
source IP). They raise instead of answering when nothing was accepted (a ValidationError or
`BatchRejectedError` for invalid input, `QueueUnavailableError` when the queue is down), so that an
idempotent caller never stores a failure as the answer to replay.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from orderpipe_common.envelope import wrap
from orderpipe_common.errors import DomainError
from orderpipe_common.http import field_errors
from orderpipe_common.identity import Caller
from orderpipe_common.model import MAX_ORDERS_PER_BATCH, Order
from orderpipe_common.observability import MetricUnit, logger, metrics
from orderpipe_common.per_process import per_process
from orderpipe_ingest.publisher import SQS_BATCH_LIMIT, FailedEntry, QueuePublisher, QueueUnavailableError
from orderpipe_ingest.responses import BatchAccepted, OrderAccepted


class BatchRejectedError(DomainError):
    """No order of the batch is valid (or the body is not a batch at all); `fields` names each error."""


# Namespace of order ids derived from an idempotency seed (any fixed UUID; never change it).
ORDER_ID_NAMESPACE = uuid.UUID("5b0c8a1e-2f4d-4c1b-9a57-0d1e6f3c2b90")


def derived_order_id(seed: str | None, index: int = 0) -> uuid.UUID | None:
    """The order id for a request's `index`-th order when the request carries a seed, else None."""
    return uuid.uuid5(ORDER_ID_NAMESPACE, f"{seed}#{index}") if seed is not None else None


def accept_order(
    payload: Any,
    publisher: QueuePublisher,
    *,
    caller: Caller,
    now: Callable[[], datetime] | None = None,
    order_id_seed: str | None = None,
) -> OrderAccepted:
    try:
        order = Order.accept_payload(
            payload,
            producer=caller.producer,
            now=now() if now else None,
            order_id=derived_order_id(order_id_seed),
        )
    except ValidationError:
        metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=1)
        raise
    publisher.send(wrap(order), group=caller.producer)
    metrics.add_metric(name="OrdersAccepted", unit=MetricUnit.Count, value=1)
    logger.info(
        "order accepted", extra={**caller.audit(), "order_id": str(order.order_id), "items": len(order.items)}
    )
    return OrderAccepted(order_id=order.order_id)


def accept_batch(
    payload: Any,
    publisher: QueuePublisher,
    *,
    caller: Caller,
    max_send_attempts: int = 4,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    order_id_seed: str | None = None,
) -> BatchAccepted:
    """Validate each order of a JSON array on its own; enqueue the valid ones in chunks of 10.

    Entries SQS reports as Failed are sent again (up to `max_send_attempts` rounds, with jittered
    exponential backoff); an order is `accepted` only once SQS has it. Raises BatchRejectedError when no
    order is valid, QueueUnavailableError when valid orders exist but none reached the queue, or, for
    a keyed request (`order_id_seed`), when a call went unanswered (its orders may be queued: the
    request is to be repeated as it is, not re-sent in part under new ids).
    """
    orders = _as_order_list(payload)
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=len(orders))
    # Each index's BatchItemResult as data: the answer is validated once, at the end.
    results: dict[int, dict[str, Any]] = {}
    valid: dict[int, Order] = {}
    for index, item in enumerate(orders):
        try:
            valid[index] = Order.accept_payload(
                item,
                producer=caller.producer,
                now=now() if now else None,
                order_id=derived_order_id(order_id_seed, index),
            )
        except ValidationError as error:
            results[index] = {"index": index, "status": "rejected", "errors": field_errors(error)}

    rejected = len(orders) - len(valid)
    if rejected:
        metrics.add_metric(name="OrdersRejected", unit=MetricUnit.Count, value=rejected)
    if not valid:
        raise BatchRejectedError(
            "no order in the batch is valid",
            fields=[
                {**error, "field": f"{index}.{error['field']}"}
                for index, result in results.items()
                for error in result["errors"]
            ],
        )

    pending = {str(index): wrap(order) for index, order in valid.items()}
    enqueued, unanswered = _send_all(
        publisher, pending, group=caller.producer, max_attempts=max_send_attempts, sleep=sleep
    )
    if unanswered and order_id_seed is not None:
        # A SendMessageBatch call that failed as a whole (a timeout, a reset) may have queued its
        # orders all the same. Answering them `failed` would have the producer send them again as a
        # new request, under new ids: stored twice. With a key, the whole request is safe to repeat
        # (the same key and body derive the same id for every order, and the writer stores an id
        # once), so it is answered 503 and the idempotency layer lets the retry run it again.
        logger.warning(
            "the queue did not answer for some orders of a keyed batch; asking for the request again",
            extra={**caller.audit(), "unanswered": len(unanswered), "enqueued": len(enqueued)},
        )
        raise QueueUnavailableError(
            "the order queue did not answer for some orders of the batch; send the same request again "
            "(same Idempotency-Key and body: every order keeps its id, none is stored twice)"
        )
    accepted_ids: list[str] = []  # in index order, as `valid` was filled
    for index, order in valid.items():
        if str(index) in enqueued:
            results[index] = {"index": index, "status": "accepted", "order_id": order.order_id}
            accepted_ids.append(str(order.order_id))
        else:
            results[index] = {"index": index, "status": "failed"}

    accepted = len(enqueued)
    failed = len(valid) - accepted
    if accepted:
        metrics.add_metric(name="OrdersAccepted", unit=MetricUnit.Count, value=accepted)
    logger.info(
        "orders accepted" if accepted else "batch processed",
        extra={
            **caller.audit(),
            "order_ids": accepted_ids,
            "size": len(orders),
            "accepted": accepted,
            "rejected": rejected,
        },
    )
    if not accepted:
        raise QueueUnavailableError(
            "the order queue did not take any order of the batch; nothing was accepted, retry later"
        )
    if failed:
        logger.warning("some orders of the batch were not enqueued", extra={"failed": failed})
    return BatchAccepted.model_validate(
        {
            "accepted": accepted,
            "rejected": rejected,
            "failed": failed,
            "results": [results[index] for index in range(len(orders))],
        }
    )


def _as_order_list(payload: Any) -> list[Any]:
    if not isinstance(payload, list):
        raise BatchRejectedError(
            "the body must be a JSON array of orders",
            fields=[{"field": "body", "message": "Input should be a valid array", "type": "list_type"}],
        )
    if not payload or len(payload) > MAX_ORDERS_PER_BATCH:
        raise BatchRejectedError(
            f"a batch holds 1 to {MAX_ORDERS_PER_BATCH} orders, this one has {len(payload)}",
            fields=[
                {
                    "field": "body",
                    "message": f"Array should have 1 to {MAX_ORDERS_PER_BATCH} items, not {len(payload)}",
                    "type": "too_short" if not payload else "too_long",
                }
            ],
        )
    return payload


@per_process
def _sender_pool() -> ThreadPoolExecutor:
    # Kept for the process: starting threads for every request cost more CPU than validating the
    # batch (benchmarks/ingest_cpu). Dropped by the one reset; its idle threads then exit.
    return ThreadPoolExecutor(
        max_workers=-(-MAX_ORDERS_PER_BATCH // SQS_BATCH_LIMIT), thread_name_prefix="send-batch"
    )


def _send_all(
    publisher: QueuePublisher,
    pending: dict[str, str],
    *,
    group: str,
    max_attempts: int,
    sleep: Callable[[float], None],
) -> tuple[set[str], set[str]]:
    """Send every entry (id -> body); return the ids SQS took, and the ids of calls that failed as a
    whole (no answer: SQS may or may not have them).

    The chunks of a round go out at once (the first from the request's thread, the others a thread
    each from the process's pool): a batch of 100 costs one SQS round trip, not ten in a row,
    within the request's deadline.
    """
    enqueued: set[str] = set()
    unanswered: set[str] = set()
    for attempt in range(max_attempts):
        if attempt:
            sleep(_backoff(attempt))
        retry: dict[str, str] = {}
        chunks = [dict(chunk) for chunk in _chunks(list(pending.items()), SQS_BATCH_LIMIT)]
        # The request's thread sends the first chunk itself rather than waiting idle for the pool
        # (one hand-over fewer: they cost the no-op-queue benchmark ~3 µs per order).
        others = [_sender_pool().submit(_send_chunk, publisher, entries, group) for entries in chunks[1:]]
        answers = [_send_chunk(publisher, chunks[0], group), *(sent.result() for sent in others)]
        for entries, failures in zip(chunks, answers, strict=True):
            if failures is None:
                unanswered.update(entries)
                continue
            failed_ids = {failure.entry_id for failure in failures}
            enqueued.update(entry_id for entry_id in entries if entry_id not in failed_ids)
            for failure in failures:
                if failure.sender_fault:  # SQS will refuse this entry again
                    logger.warning("queue refused an entry", extra={"code": failure.code})
                else:
                    retry[failure.entry_id] = entries[failure.entry_id]
        if (
            unanswered
        ):  # the publisher already retried within the deadline: do not hammer a queue that is down
            return enqueued, unanswered
        if not retry:
            break
        logger.info(
            "retrying entries the queue failed", extra={"entries": len(retry), "attempt": attempt + 1}
        )
        pending = retry
    return enqueued, unanswered


def _send_chunk(
    publisher: QueuePublisher, entries: dict[str, str], group: str | None
) -> Sequence[FailedEntry] | None:
    """The entries SQS failed, or None when the call as a whole failed (none of them enqueued)."""
    try:
        return publisher.send_batch(entries, group=group)
    except QueueUnavailableError:
        return None


def _backoff(attempt: int) -> float:
    # Full jitter over 50 ms, 100 ms, 200 ms ... capped at 1 s: the request waits at most a few seconds.
    return random.uniform(0, min(1.0, 0.05 * 2 ** (attempt - 1)))


def _chunks[T](items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
