"""Local end-to-end, sustained: the load generator against the local runtime (real handlers, the
SQS event-source emulator, a real Cassandra node), on this machine's cores.

Goal: >= 1,000 orders/s accepted for 60 s and p99 POST -> readable <= 2 s. The CPU seconds each
part used during the run (gateway + event source + generator, function workers, SQS server,
Cassandra) are recorded, so a missed goal says what bounds it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from benchmarks.proc_cpu import cpu_by_role, descendants_cpu
from benchmarks.results_file import BenchmarkResult, Goal
from orderpipe_devenv.aws.endpoints import SqsBackend, local_aws
from orderpipe_devenv.processes import free_port
from orderpipe_devenv.runtime.pipeline import LocalRuntime, RuntimeConfig
from orderpipe_testkit.auth import for_producer
from orderpipe_testkit.loadgen import LoadConfig, run_load

TARGET_ORDERS_PER_S = 1_000
TARGET_VISIBILITY_P99_MS = 2_000


def measure(
    *,
    cassandra_env: dict[str, str],
    sqs_backend: SqsBackend,
    rate: float,
    duration_s: float,
    batch_size: int,
    concurrency: int,
    progress: Callable[[str], None] = print,
    plot_path: Any = None,
) -> dict[str, Any]:
    for noisy in ("orderpipe.gateway", "orderpipe.event_source"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with local_aws(sqs_backend) as aws:
        config = RuntimeConfig(
            port=free_port(), keyspace=cassandra_env.get("CASSANDRA_KEYSPACE", "orderpipe")
        )
        with LocalRuntime(
            config,
            cassandra_env=cassandra_env,
            aws_endpoint_url=aws.endpoint_url,
            sqs_endpoint_url=aws.sqs_endpoint_url,
        ) as runtime:
            progress(
                f"end_to_end[{aws.sqs_backend}]: {rate:.0f} orders/s for {duration_s:.0f} s, batch {batch_size}"
            )
            before = descendants_cpu()
            load = run_load(
                LoadConfig(
                    base_url=runtime.url,
                    auth=for_producer(runtime.default_producer()),
                    rate=rate,
                    concurrency=concurrency,
                    duration_s=duration_s,
                    batch_size=batch_size,
                    visibility_every_s=0.2,
                    visibility_timeout_s=30,
                )
            )
            cpu = cpu_by_role(before, descendants_cpu())
            assert runtime.event_source is not None
            stats = runtime.event_source.stats
            written = {"batches": stats.batches, "records": stats.records, "failed": stats.failed}
    report = load.as_dict()
    if plot_path is not None:
        from orderpipe_testkit.loadgen.plot import plot_report

        plot_report(
            load,
            plot_path,
            title=f"orderpipe local end-to-end ({aws.sqs_backend} SQS), {os.cpu_count()} cores",
        )
    report.pop("per_second")
    report["cpu_seconds_by_part"] = cpu
    report["writer_event_source"] = written
    report["sqs_backend"] = aws.sqs_backend
    progress(
        f"  {report['throughput']['orders_accepted_per_s']:,.0f} orders/s accepted, POST p99 "
        f"{report['accept_latency']['p99_ms']} ms, readable p99 {report['visibility']['latency']['p99_ms']} ms; cpu {cpu}"
    )
    return report


def run(
    *,
    cassandra_env: dict[str, str],
    sqs_backends: tuple[SqsBackend, ...] = ("elasticmq", "moto"),
    duration_s: float = 60,
    rate: float = 1_200,
    batch_size: int = 50,
    concurrency: int = 8,
    compare_duration_s: float = 30,
    progress: Callable[[str], None] = print,
    plot_path: Any = None,
) -> BenchmarkResult:
    main, *others = sqs_backends
    reports = {
        main: measure(
            cassandra_env=cassandra_env,
            sqs_backend=main,
            rate=rate,
            duration_s=duration_s,
            batch_size=batch_size,
            concurrency=concurrency,
            progress=progress,
            plot_path=plot_path,
        )
    }
    for backend in others:  # the same load, shorter: enough to show the difference
        reports[backend] = measure(
            cassandra_env=cassandra_env,
            sqs_backend=backend,
            rate=rate,
            duration_s=compare_duration_s,
            batch_size=batch_size,
            concurrency=concurrency,
            progress=progress,
        )
    headline = reports[main]
    visibility_p99 = headline["visibility"]["latency"]["p99_ms"]
    never_visible = headline["visibility"]["never_visible"]
    figures: dict[str, Any] = {
        "sqs_backend": headline["sqs_backend"],
        "target_rate_orders_per_s": rate,
        "duration_s": headline["duration_s"],
        "batch_size": batch_size,
        "orders_accepted_per_s": headline["throughput"]["orders_accepted_per_s"],
        "orders_accepted": headline["orders_accepted"],
        "accept_latency_ms": headline["accept_latency"],
        "visibility_latency_ms": headline["visibility"]["latency"],
        "visibility_sampled": headline["visibility"]["sampled"],
        "visibility_never_visible": never_visible,
        "status_counts": headline["status_counts"],
        "cpu_seconds_by_part": headline["cpu_seconds_by_part"],
        "by_sqs_backend": reports,
    }
    # A sample that never became readable counts as the visibility timeout (30 s).
    p99 = 30_000.0 if visibility_p99 is None or never_visible else float(visibility_p99)
    return BenchmarkResult(
        benchmark="end_to_end",
        figures=figures,
        ratios={
            "orders_per_s_vs_1000": headline["throughput"]["orders_accepted_per_s"] / TARGET_ORDERS_PER_S,
            "visibility_p99_vs_2s": p99 / TARGET_VISIBILITY_P99_MS,
        },
        goals=[Goal("orders_per_s_vs_1000", 1.0), Goal("visibility_p99_vs_2s", 1.0, "at_most")],
        notes=[
            f"Load generator (this process, threads, keep-alive) -> API Gateway emulator -> ingest workers "
            f"-> SQS ({headline['sqs_backend']}) -> event-source emulator -> writer workers -> Cassandra, "
            f"all on {os.cpu_count()} cores. POST /orders/batch with {batch_size} orders per request.",
        ],
    )
