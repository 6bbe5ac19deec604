"""Drills 1-4 and 7: outage, poison messages, duplicate delivery, producer retries, writer crash.

Drills 1-4 run on a started local runtime with short tuning (`drill_runtime(cassandra)`; they can
share one, run one after another; each counts only its own orders). The writer crash makes its own
runtime, since its queue must be full before the writer polls. Each returns a `DrillReport` and
raises `DrillFailedError` when a promise does not hold (lost > 0 always fails).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from orderpipe_common.tuning import DEFAULT_TUNING
from orderpipe_devenv.runtime.pipeline import DEFAULT_PRODUCER, LocalRuntime
from orderpipe_ops.queues import redrive
from orderpipe_testkit.drills.common import (
    CassandraEndpointLike,
    DrillReport,
    Outage,
    SteadyLoad,
    account,
    api_client,
    check,
    dlq_contents,
    drill_runtime,
    queues_of,
    stored_rows,
    wait_drained,
    wait_until,
)
from orderpipe_testkit.sample_orders import make_order, message_body, order_payload
from orderpipe_writer.settings import WriterSettings


def _send(sqs: Any, queue_url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        )
        if response.get("Failed"):
            raise RuntimeError(f"the queue refused {len(response['Failed'])} message(s)")


# --- 1. Cassandra outage --------------------------------------------------------------------------


def cassandra_outage(
    runtime: LocalRuntime,
    outage: Outage,
    *,
    rate_per_second: float = 20,
    before_seconds: float = 3,
    down_seconds: float = 8,
    after_seconds: float = 3,
) -> DrillReport:
    """Steady POSTs; Cassandra stops and starts under them; every 202 becomes readable."""
    report = DrillReport("outage")
    started = time.monotonic()
    max_requests = int(rate_per_second * (before_seconds + down_seconds + after_seconds + 120))
    with SteadyLoad(runtime, rate_per_second=rate_per_second, max_requests=max_requests) as load:
        time.sleep(before_seconds)
        outage.stop()
        stopped_at = time.monotonic()
        accepted_before = len(load.accepted_ids)
        time.sleep(down_seconds)
        outage.start()  # returns once the node answers CQL again
        accepted_while_down = len(load.accepted_ids) - accepted_before
        report.details["cassandra down"] = f"{time.monotonic() - stopped_at:.1f} s (stop, wait, start)"
        time.sleep(after_seconds)
    report.sent, report.accepted = load.sent, len(load.accepted_ids)
    report.details["answers"] = dict(sorted(load.statuses.items()))
    report.details["accepted while Cassandra was down"] = accepted_while_down
    check(accepted_while_down > 0, "no POST was accepted while Cassandra was down")
    check(set(load.statuses) == {202}, f"POSTs got other answers than 202: {load.statuses}")
    # Retries run their course; what passed maxReceiveCount waits in the DLQ.
    wait_drained(runtime, timeout=90)
    dead, _ = dlq_contents(runtime)
    report.details["in the DLQ after the outage"] = len(dead)
    result = redrive(runtime.client("sqs"), queues_of(runtime), use_move_task=True)
    report.details["redriven"] = f"{result.moved} via {result.method}"
    wait_drained(runtime, timeout=60)
    account(report, runtime, load.accepted_ids, timeout=30)
    report.seconds = time.monotonic() - started
    check(report.lost == 0, f"{report.lost} accepted orders lost")
    check(report.readable == report.accepted, f"only {report.readable} of {report.accepted} readable")
    return report


# --- 2. Poison messages ----------------------------------------------------------------------------


def poison_bodies() -> list[str]:
    """Undecodable and schema-invalid messages, each unique (so each can be found in the DLQ)."""
    marker = uuid.uuid4().hex[:8]
    valid = json.loads(message_body(make_order(1)))
    negative = json.loads(json.dumps(valid))
    negative["order"]["items"][0]["quantity"] = -1
    negative["order"]["customer_id"] = f"poison-{marker}-negative"
    future = {**valid, "schema_version": 99, "marker": marker}
    missing = {"schema_version": 1, "order": {"customer_id": f"poison-{marker}"}}
    return [
        f"not json at all {marker}",
        f'{{"schema_version": 1, "order": "{marker}"}}',
        json.dumps(negative),
        json.dumps(future),
        json.dumps(missing),
        f"\ufffd\u00e9\u4e2d binary-ish {marker}",
        json.dumps([marker]),
        json.dumps({"schema_version": 1, "order": None, "m": marker}),
    ]


def poison_messages(runtime: LocalRuntime, *, valid_count: int = 40) -> DrillReport:
    """Poison mixed into every batch: only the poison reaches the DLQ; every valid order is stored."""
    report = DrillReport("poison")
    started = time.monotonic()
    # Orders put on the queue directly belong to the producer the drill reads them back as.
    orders = [make_order(seed, producer=DEFAULT_PRODUCER) for seed in range(1000, 1000 + valid_count)]
    poison = poison_bodies()
    bodies: list[str] = []
    for index, order in enumerate(orders):  # one poison message in (almost) every batch of ten
        bodies.append(message_body(order))
        if index % 5 == 4 and poison[len(bodies) % len(poison)] not in bodies:
            bodies.append(poison[len(bodies) % len(poison)])
    bodies += [p for p in poison if p not in bodies]
    _send(runtime.client("sqs"), queues_of(runtime).queue_url, bodies)
    report.sent = report.accepted = len(bodies)
    ids = [str(o.order_id) for o in orders]

    def poison_all_dead() -> bool:
        return set(poison) <= set(dlq_contents(runtime)[1])

    wait_until(poison_all_dead, timeout=90, interval=1, what="every poison message to reach the DLQ")
    wait_drained(runtime, timeout=30)
    dead_ids, all_dead_bodies = dlq_contents(runtime)
    dead_ids &= set(ids)
    dead_bodies = [b for b in all_dead_bodies if b in set(poison)]
    account(report, runtime, ids, timeout=30)
    report.in_dlq = len(dead_ids) + len(dead_bodies)
    poison_lost = set(poison) - set(dead_bodies)
    report.lost += len(poison_lost)
    report.details["valid orders stored"] = f"{report.readable} of {len(orders)}"
    report.details["poison in the DLQ"] = f"{len(set(dead_bodies) & set(poison))} of {len(poison)}"
    check(not dead_ids, f"{len(dead_ids)} valid orders ended in the DLQ")
    check(sorted(dead_bodies) == sorted(poison), "the poison is not in the DLQ exactly once each")
    check(len(stored_rows(runtime, ids)) == len(orders), "not every valid order has its row")
    report.seconds = time.monotonic() - started
    check(report.lost == 0, f"{report.lost} messages lost")
    check(report.readable == len(orders), f"only {report.readable} of {len(orders)} valid orders stored")
    return report


# --- 3. Duplicate delivery -------------------------------------------------------------------------


def duplicate_delivery(runtime: LocalRuntime, *, orders_count: int = 30, copies: int = 3) -> DrillReport:
    """Each message delivered `copies` times: one row per order, identical to the first write."""
    report = DrillReport("duplicates")
    started = time.monotonic()
    orders = [make_order(seed, producer=DEFAULT_PRODUCER) for seed in range(2000, 2000 + orders_count)]
    ids = [str(o.order_id) for o in orders]
    sqs, queue_url = runtime.client("sqs"), queues_of(runtime).queue_url
    assert runtime.event_source is not None
    deleted_before = runtime.event_source.stats.deleted
    _send(sqs, queue_url, [message_body(o) for o in orders])
    wait_until(lambda: len(stored_rows(runtime, ids)) == orders_count, timeout=30, what="the first delivery")
    first = stored_rows(runtime, ids)
    # The same messages again, copies - 1 times, the copies of one message in the same batch.
    _send(sqs, queue_url, [message_body(o) for o in orders for _ in range(copies - 1)])
    delivered = orders_count * copies
    wait_until(
        lambda: runtime.event_source is not None
        and runtime.event_source.stats.deleted - deleted_before >= delivered,
        timeout=60,
        what="every copy to be delivered",
    )
    wait_drained(runtime, timeout=30)
    after = stored_rows(runtime, ids)
    report.sent = report.accepted = delivered
    account(report, runtime, ids, timeout=30)
    changed = [order_id for order_id in ids if after.get(order_id) != first.get(order_id)]
    report.details["deliveries"] = f"{delivered} ({copies} per order), rows: {len(after)}"
    report.details["rows changed by a redelivery"] = len(changed)
    check(len(after) == orders_count, f"{len(after)} rows for {orders_count} orders")
    check(not changed, f"{len(changed)} rows changed by a duplicate delivery")
    report.seconds = time.monotonic() - started
    check(report.lost == 0, f"{report.lost} orders lost")
    return report


# --- 4. Producer retries (Idempotency-Key) --------------------------------------------------------


def producer_retries(runtime: LocalRuntime, *, concurrent: int = 8, sequential: int = 4) -> DrillReport:
    """The same Idempotency-Key and body, concurrently and then one after another: one order."""
    report = DrillReport("idempotency")
    started = time.monotonic()
    payload, key = order_payload(3000), str(uuid.uuid4())
    with api_client(runtime) as api:
        assert runtime.event_source is not None
        wait_drained(runtime, timeout=60)
        # Distinct messages, not deliveries: on a loaded machine a cold writer can outlast the short
        # visibility timeout and the same message is (rightly) delivered again.
        enqueued_before = runtime.event_source.stats.first_deliveries

        def post() -> Any:
            return api.post("/orders", json=payload, headers={"Idempotency-Key": key})

        barrier = threading.Barrier(concurrent)

        def post_together() -> Any:
            barrier.wait()
            return post()

        with ThreadPoolExecutor(concurrent) as pool:
            answers = list(pool.map(lambda _: post_together(), range(concurrent)))
        answers += [post() for _ in range(sequential)]
        statuses: dict[int, int] = {}
        for answer in answers:
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        # A 409 means "the first request with this key still runs": the producer retries it.
        retried = 0
        for index, answer in enumerate(answers):
            while answer.status_code == 409 and retried < 50:
                time.sleep(float(answer.headers.get("retry-after", "1")) / 4)
                answer = answers[index] = post()
                retried += 1
        report.sent = concurrent + sequential
        order_ids = {a.json()["order_id"] for a in answers if a.status_code == 202}
        report.accepted = sum(a.status_code == 202 for a in answers)
        report.details["first answers"] = dict(sorted(statuses.items()))
        report.details["409s retried"] = retried
        report.details["distinct order ids"] = len(order_ids)
        check(set(statuses) <= {202, 409}, f"unexpected answers: {statuses}")
        check(len(order_ids) == 1, f"{len(order_ids)} orders for one Idempotency-Key")
        wait_until(lambda: stored_rows(runtime, sorted(order_ids)), timeout=30, what="the order to be stored")
        wait_drained(runtime, timeout=30)
        time.sleep(1.5)  # a second message, if one had been enqueued, would be delivered by now
        enqueued = runtime.event_source.stats.first_deliveries - enqueued_before
        report.details["messages enqueued"] = enqueued
        account(report, runtime, sorted(order_ids), timeout=30)
        rows = stored_rows(runtime, sorted(order_ids))
        report.details["rows"] = len(rows)
        check(enqueued == 1, f"{enqueued} messages were enqueued for one order")
        check(len(rows) == 1, f"{len(rows)} rows stored")
    report.seconds = time.monotonic() - started
    check(report.lost == 0, "the order was lost")
    return report


# --- 7. Writer crash mid-batch ---------------------------------------------------------------------

CRASH_TUNING = DEFAULT_TUNING.with_overrides(
    {
        # Long enough for a 500-order batch at 4 in flight on a busy machine (visibility 18 s).
        "writer_timeout_seconds": 3,
        "alarm_oldest_message_age_seconds": 10,
        "max_receive_count": 3,
        "writer_batch_size": 500,
        "writer_batching_window_seconds": 2,
        "writer_max_concurrency": 2,
    }
)


def writer_crash(cassandra: CassandraEndpointLike, *, orders_count: int = 400) -> DrillReport:
    """The writer's processes are SIGKILLed while a batch is being inserted; redelivery completes it."""
    report = DrillReport("crash")  # the name `orderpipe drill crash` knows it by
    started = time.monotonic()
    orders = [make_order(seed, producer=DEFAULT_PRODUCER) for seed in range(4000, 4000 + orders_count)]
    ids = [str(o.order_id) for o in orders]

    def fill_queue(sqs: Any, resources: Any) -> None:
        # Queued before the writer polls: its first batches are large, their inserts take a while.
        _send(sqs, resources.queue_url, [message_body(o) for o in orders])

    # The writer inserts a few at a time so a batch stays in flight long enough to be cut.
    with drill_runtime(
        cassandra,
        name="crash",
        tuning=CRASH_TUNING,
        before_start=fill_queue,
        writer_env=WriterSettings.environment(writer_max_in_flight=4),
    ) as runtime:
        assert runtime.event_source is not None
        writer = runtime.functions["writer"]
        report.sent = report.accepted = orders_count
        rows_at_kill = wait_until(
            lambda: len(stored_rows(runtime, ids)), timeout=30, interval=0.02, what="the first inserts"
        )
        killed = writer.worker_pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        report.details["writer processes killed"] = f"{len(killed)} (SIGKILL) with {rows_at_kill} rows stored"
        check(0 < rows_at_kill < orders_count, f"the crash came after the batch ({rows_at_kill} rows)")
        wait_until(
            lambda: len(stored_rows(runtime, ids)) == orders_count,
            timeout=90,
            interval=1,
            what="redelivery to complete the batch",
        )
        wait_drained(runtime, timeout=30)
        report.details["handler errors seen by the event source"] = runtime.event_source.stats.handler_errors
        rows = stored_rows(runtime, ids)
        account(report, runtime, ids, timeout=30)
        mismatched = [o for o in orders if rows[str(o.order_id)][1] != o.customer_id]
        report.details["rows"] = f"{len(rows)} for {orders_count} orders, {len(mismatched)} differing"
        check(runtime.event_source.stats.handler_errors >= 1, "the crash was not seen by the event source")
        check(len(rows) == orders_count and not mismatched, "rows differ from the orders sent")
    report.seconds = time.monotonic() - started
    check(report.lost == 0, f"{report.lost} orders lost")
    return report
