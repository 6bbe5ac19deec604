"""Writer throughput on a real Cassandra node, against two baselines in the same run.

- writer: the real writer handler on SQS events of the configured batch size (parse + concurrent insert)
- raw: `execute_concurrent_with_args` with the same prepared statement and rows (the ceiling)
- per_record: one synchronous `session.execute` per row (how the tutorials this grew from write)

All three write the same generated orders (upserts by order_id), after a warm-up, alternating
variants across rounds so drift on a noisy 2-core machine hits each alike; the median round counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from benchmarks.common import environment
from benchmarks.results_file import BenchmarkResult, Goal
from orderpipe_common import cassandra_session
from orderpipe_common.order_rows import INSERT_ORDER_CQL, order_to_row
from orderpipe_common.tuning import DEFAULT_TUNING
from orderpipe_devenv.lambda_events import LocalLambdaContext, sqs_event_from_bodies
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import make_orders, message_body
from orderpipe_writer.settings import WriterSettings


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run(
    *,
    cassandra_env: dict[str, str],
    rows: int = 5_000,
    rounds: int = 3,
    batch_size: int = DEFAULT_TUNING.writer_batch_size,
    progress: Callable[[str], None] = print,
) -> BenchmarkResult:
    from orderpipe_writer import handler  # imported after the environment is set

    with environment(
        {**cassandra_env, "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true"}
    ):
        reset_process_state()
        settings = WriterSettings()
        orders = make_orders(rows)
        events = [
            sqs_event_from_bodies(message_body(o) for o in batch) for batch in _chunks(orders, batch_size)
        ]
        row_batches = [[order_to_row(o) for o in batch] for batch in _chunks(orders, batch_size)]

        session: Session = cassandra_session.build_cluster(settings).connect(settings.cassandra_keyspace)
        insert = session.prepare(INSERT_ORDER_CQL)
        insert.consistency_level = cassandra_session.consistency(settings.cassandra_write_consistency)
        context = LocalLambdaContext(function_name="writer-benchmark")

        def writer(batches: range) -> None:
            for index in batches:
                response = handler.lambda_handler(events[index], context)
                if response["batchItemFailures"]:
                    raise RuntimeError(f"writer reported failures: {response['batchItemFailures'][:3]}")

        def raw(batches: range) -> None:
            for index in batches:
                for ok, outcome in execute_concurrent_with_args(
                    session,
                    insert,
                    row_batches[index],
                    concurrency=settings.writer_max_in_flight,
                    raise_on_first_error=True,
                ):
                    assert ok, outcome

        def per_record(batches: range) -> None:
            for index in batches:
                for row in row_batches[index]:
                    session.execute(insert, row)

        variants: dict[str, Callable[[range], None]] = {
            "writer": writer,
            "raw": raw,
            "per_record": per_record,
        }
        all_batches = range(len(events))
        # A slice of the work first, so connection and JIT warm-up stay out of the measured rounds.
        warm_up = range(max(1, min(len(events), 500 // batch_size)))
        progress(f"warming up ({len(warm_up) * batch_size} rows per variant)")
        for variant in variants.values():
            variant(warm_up)

        samples: dict[str, list[float]] = {name: [] for name in variants}
        for round_number in range(rounds):
            order = list(variants) if round_number % 2 == 0 else list(reversed(variants))
            for name in order:
                started = time.perf_counter()
                variants[name](all_batches)
                elapsed = time.perf_counter() - started
                samples[name].append(rows / elapsed)
                progress(f"round {round_number + 1}/{rounds} {name}: {rows / elapsed:,.0f} rows/s")
        session.cluster.shutdown()
        reset_process_state()

    median = {name: sorted(values)[len(values) // 2] for name, values in samples.items()}
    return BenchmarkResult(
        benchmark="writer",
        figures={
            "rows_per_round": rows,
            "rounds": rounds,
            "batch_size": batch_size,
            "max_in_flight": settings.writer_max_in_flight,
            "writer_rows_per_s": round(median["writer"]),
            "raw_concurrent_rows_per_s": round(median["raw"]),
            "per_record_sync_rows_per_s": round(median["per_record"]),
            "samples_rows_per_s": {name: [round(v) for v in values] for name, values in samples.items()},
            "consistency": settings.cassandra_write_consistency,
        },
        ratios={
            "writer_vs_raw": median["writer"] / median["raw"],
            "writer_vs_per_record": median["writer"] / median["per_record"],
        },
        goals=[Goal("writer_vs_raw", 0.9), Goal("writer_vs_per_record", 5.0)],
        notes=[
            "One local Cassandra 5.0 node (RF 1) on the same 2-core machine as the client: client and "
            "server compete for CPU, so absolute figures are far below a real cluster's.",
        ],
    )
