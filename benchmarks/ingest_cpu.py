"""Ingest CPU per order with the SQS I/O replaced by a no-op transport, against the least any
ingest must do per order: `json.loads` + `uuid4` + `json.dumps`.

The real handler runs in-process on API Gateway REST proxy events (Powertools resolver, content
checks, pydantic validation, id assignment, the versioned envelope), once with single-order POSTs
and once with batch POSTs; CPU time is `time.process_time()`, so waiting never counts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from benchmarks.common import (
    LOCAL_AWS,
    NO_NETWORK_ENDPOINT,
    QUIET_POWERTOOLS,
    alternating_rounds,
    aws_endpoint,
    environment,
    medians,
    spread_percent,
)
from benchmarks.results_file import BenchmarkResult, Goal
from orderpipe_common.identity import SCOPE_WRITE, authorizer_context
from orderpipe_common.settings import PowertoolsSettings
from orderpipe_devenv.lambda_events import LocalLambdaContext, rest_proxy_event
from orderpipe_ingest.settings import IngestSettings
from orderpipe_testkit.loadgen.orders import BodyPool
from orderpipe_testkit.process_state import reset_process_state


class NoOpPublisher:
    """A QueuePublisher that takes every message and does nothing with it."""

    def __init__(self) -> None:
        self.messages = 0

    def send(self, body: str, *, group: str | None = None) -> None:
        self.messages += 1

    def send_batch(self, entries: Mapping[str, str], *, group: str | None = None) -> Sequence[Any]:
        self.messages += len(entries)
        return []


def run(
    *, orders: int = 4_000, rounds: int = 5, batch_size: int = 100, progress: Callable[[str], None] = print
) -> BenchmarkResult:
    env = {
        **QUIET_POWERTOOLS,
        **LOCAL_AWS,
        **PowertoolsSettings.environment(powertools_service_name="ingest"),
        **IngestSettings.environment(
            orders_queue_url=f"{NO_NETWORK_ENDPOINT}/000000000000/no-op", idempotency_table_name="no-op"
        ),
        # Nothing may leave the process: any real AWS call would fail fast on the discard port.
        **aws_endpoint(NO_NETWORK_ENDPOINT),
    }
    with environment(env):
        from orderpipe_ingest import handler, publisher

        reset_process_state()
        no_op = NoOpPublisher()
        original = publisher.publisher_within

        def no_op_within(deadline: Any) -> publisher.QueuePublisher:
            return no_op

        publisher.publisher_within = no_op_within
        try:
            return _measure(
                handler, no_op, orders=orders, rounds=rounds, batch_size=batch_size, progress=progress
            )
        finally:
            publisher.publisher_within = original
            reset_process_state()


def _measure(
    handler: Any,
    no_op: NoOpPublisher,
    *,
    orders: int,
    rounds: int,
    batch_size: int,
    progress: Callable[[str], None],
) -> BenchmarkResult:
    singles = BodyPool(profile="mixed", batch_size=1)
    batches = BodyPool(profile="mixed", batch_size=batch_size)
    context = LocalLambdaContext(function_name="ingest")
    headers = {"content-type": "application/json"}
    caller = authorizer_context("bench-producer", [SCOPE_WRITE])
    single_events = [
        rest_proxy_event(
            "POST", "/orders", resource="/orders", headers=headers, body=singles.body(i), authorizer=caller
        )
        for i in range(orders)
    ]
    batch_events = [
        rest_proxy_event(
            "POST",
            "/orders/batch",
            resource="/orders/batch",
            headers=headers,
            body=batches.body(i),
            authorizer=caller,
        )
        for i in range(max(1, orders // batch_size))
    ]
    raw_bodies = [singles.body(i) for i in range(orders)]

    def cpu_per_order(work: Callable[[], int]) -> float:
        started = time.process_time()
        count = work()
        return (time.process_time() - started) / count * 1e6  # microseconds per order

    def single_posts() -> int:
        for event in single_events:
            response = handler.lambda_handler(event, context)
            assert response["statusCode"] == 202, response
        return len(single_events)

    def batch_posts() -> int:
        for event in batch_events:
            response = handler.lambda_handler(event, context)
            assert response["statusCode"] == 202, response
        return len(batch_events) * batch_size

    def baseline() -> int:
        for body in raw_bodies:
            payload = json.loads(body)
            payload["order_id"] = str(uuid.uuid4())
            json.dumps(payload)
        return len(raw_bodies)

    variants = {
        "baseline": lambda: cpu_per_order(baseline),
        "single": lambda: cpu_per_order(single_posts),
        "batch": lambda: cpu_per_order(batch_posts),
    }
    for variant in variants.values():  # warm-up: imports, caches, first-call costs
        variant()
    samples = alternating_rounds(variants, rounds, progress)
    median = medians(samples)
    return BenchmarkResult(
        benchmark="ingest_cpu",
        figures={
            "orders_per_round": orders,
            "rounds": rounds,
            "batch_size": batch_size,
            "baseline_cpu_us_per_order": round(median["baseline"], 2),
            "single_post_cpu_us_per_order": round(median["single"], 2),
            "batch_post_cpu_us_per_order": round(median["batch"], 2),
            "samples_cpu_us_per_order": {k: [round(v, 2) for v in vals] for k, vals in samples.items()},
            "spread_percent": {k: spread_percent(vals) for k, vals in samples.items()},
            "messages_published": no_op.messages,
        },
        ratios={
            "ingest_batch_vs_baseline": median["batch"] / median["baseline"],
            "ingest_single_vs_baseline": median["single"] / median["baseline"],
            # A single POST is one request: Lambda bills its duration in 1 ms steps and the SQS round
            # trip dominates it, so its goal is CPU per request, not a ratio to json+uuid.
            "ingest_single_cpu_vs_1ms": median["single"] / 1000,
        },
        goals=[
            Goal("ingest_batch_vs_baseline", 3.0, "at_most"),
            Goal("ingest_single_cpu_vs_1ms", 1.0, "at_most"),
        ],
        notes=[
            "The whole handler in-process on API Gateway REST proxy events, the SQS publisher replaced "
            "by a no-op; CPU time (process_time), median of alternating rounds.",
            "single: one order per POST /orders; batch: POST /orders/batch with batch_size orders.",
        ],
    )
