"""Reader: cache hit vs cache miss latency for the same ids, and Cassandra reads per GET under a
polling workload (each id polled many times), on the real node and moto's DynamoDB.

The real reader handler runs in-process on API Gateway REST proxy events. Orders are written by
the real writer first. Per round, fresh cache table contents: the first GET of each id is a miss
(DynamoDB get + Cassandra SELECT + DynamoDB put), the second a hit (DynamoDB get only). Then every
id is polled `polls_per_id` times while the Cassandra SELECTs are counted.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3

from benchmarks.common import LOCAL_AWS, QUIET_POWERTOOLS, aws_endpoint, environment, spread_percent
from benchmarks.results_file import BenchmarkResult, Goal
from orderpipe_common.identity import SCOPE_READ, authorizer_context
from orderpipe_devenv.aws import resources as aws_resources
from orderpipe_devenv.aws.moto_server import MotoServerProcess
from orderpipe_devenv.lambda_events import LocalLambdaContext, rest_proxy_event, sqs_event_from_bodies
from orderpipe_reader.settings import ReaderSettings
from orderpipe_testkit.loadgen.orders import order_payload
from orderpipe_testkit.process_state import reset_process_state

# The producer the orders belong to; every GET is its own (the authorizer's context, as deployed).
PRODUCER = "bench-producer"


def _get(reader: Any, order_id: uuid.UUID) -> float:
    path = f"/orders/{order_id}"
    event = rest_proxy_event(
        "GET",
        path,
        resource="/orders/{order_id}",
        path_parameters={"order_id": str(order_id)},
        authorizer=authorizer_context(PRODUCER, [SCOPE_READ]),
    )
    # A context per invocation, as Lambda gives: the reader's deadline comes from its remaining time.
    context = LocalLambdaContext(function_name="reader")
    started = time.perf_counter()
    response = reader.lambda_handler(event, context)
    elapsed = time.perf_counter() - started
    if response["statusCode"] != 200:
        raise RuntimeError(f"GET {path} answered {response['statusCode']}: {response.get('body')}")
    return elapsed


def run(
    *,
    cassandra_env: dict[str, str],
    orders: int = 200,
    rounds: int = 3,
    polls_per_id: int = 25,
    progress: Callable[[str], None] = print,
) -> BenchmarkResult:
    import random

    from orderpipe_common.envelope import wrap
    from orderpipe_common.model import Order, OrderRequest

    rng = random.Random(11)
    batch = [
        Order.accept(OrderRequest.model_validate(order_payload(rng, "mixed")), producer=PRODUCER)
        for _ in range(orders)
    ]
    ids = [order.order_id for order in batch]
    with MotoServerProcess() as moto:
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=moto.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=LOCAL_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_AWS["AWS_SECRET_ACCESS_KEY"],
        )
        env = {
            **cassandra_env,
            **QUIET_POWERTOOLS,
            **LOCAL_AWS,
            **aws_endpoint(moto.endpoint_url),
            **ReaderSettings.environment(cache_ttl_seconds=300),
        }
        with environment(env):
            from orderpipe_reader import handler as reader
            from orderpipe_reader.store import CassandraOrderSource
            from orderpipe_writer import handler as writer

            reset_process_state()
            for start in range(0, orders, 100):
                response = writer.lambda_handler(
                    sqs_event_from_bodies(wrap(o) for o in batch[start : start + 100]),
                    LocalLambdaContext(function_name="writer"),
                )
                assert not response["batchItemFailures"], response

            reads = {"count": 0}
            original_find = CassandraOrderSource.find

            def counting_find(self: CassandraOrderSource, order_id: uuid.UUID, deadline: Any) -> Any:
                reads["count"] += 1
                return original_find(self, order_id, deadline)

            CassandraOrderSource.find = counting_find  # type: ignore[method-assign]
            miss_rounds: list[float] = []
            hit_rounds: list[float] = []
            reads_per_get: list[float] = []
            try:
                for number in range(rounds + 1):  # round 0 warms connections and code paths
                    table = aws_resources.create_cache_table(f"bench-cache-{number}", dynamodb=dynamodb)
                    with environment(ReaderSettings.environment(cache_table_name=table.name)):
                        reset_process_state()
                        misses = [_get(reader, order_id) for order_id in ids]
                        hits = [_get(reader, order_id) for order_id in ids]
                        reads["count"] = 0
                        gets = 0
                        for _ in range(polls_per_id):
                            for order_id in ids:
                                _get(reader, order_id)
                                gets += 1
                    if number == 0:
                        continue
                    miss_rounds.append(statistics.median(misses) * 1000)
                    hit_rounds.append(statistics.median(hits) * 1000)
                    # The polling includes the first GET of each id (the miss) as a client would.
                    reads_per_get.append((reads["count"] + orders) / (gets + orders))
                    progress(
                        f"reader round {number}/{rounds}: miss {miss_rounds[-1]:.2f} ms, hit "
                        f"{hit_rounds[-1]:.2f} ms, {reads_per_get[-1]:.3f} Cassandra reads per GET"
                    )
            finally:
                CassandraOrderSource.find = original_find  # type: ignore[method-assign]
                reset_process_state()

    miss, hit = statistics.median(miss_rounds), statistics.median(hit_rounds)
    per_get = statistics.median(reads_per_get)
    return BenchmarkResult(
        benchmark="reader_cache",
        figures={
            "orders": orders,
            "rounds": rounds,
            "polls_per_id": polls_per_id,
            "miss_median_ms": round(miss, 3),
            "hit_median_ms": round(hit, 3),
            "samples_median_ms": {
                "miss": [round(v, 3) for v in miss_rounds],
                "hit": [round(v, 3) for v in hit_rounds],
            },
            "spread_percent": {"miss": spread_percent(miss_rounds), "hit": spread_percent(hit_rounds)},
            "cassandra_reads_per_get_samples": [round(v, 4) for v in reads_per_get],
        },
        ratios={"hit_vs_miss": hit / miss, "cassandra_reads_per_get": per_get},
        goals=[Goal("hit_vs_miss", 0.5, "at_most"), Goal("cassandra_reads_per_get", 0.05, "at_most")],
        notes=[
            "The real reader handler in-process; cache = moto DynamoDB over loopback HTTP, store = the "
            "local Cassandra node. Latency is the handler's wall time per GET (median over the ids).",
            f"Polling: each id GET {polls_per_id + 1} times (the first a miss); reads per GET = Cassandra "
            "SELECTs / GETs.",
        ],
    )
