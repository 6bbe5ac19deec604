"""The local pipeline at rates it can carry: a step test, single POSTs and batch POSTs.

The load generator offers a rate for one step, then a higher one, against the local runtime (API
Gateway emulator -> ingest workers -> ElasticMQ -> event-source emulator -> writer workers ->
Cassandra, real handlers throughout). A step is *sustained* when the generator kept up (>= 95 % of
the offered orders accepted), p99 POST -> readable (sampled orders polled with GET) is <= 2 s and the
backlog did not grow (queue depth at the step's end, messages visible + in flight, at most one
second of the offered rate more than at its start). The result is the highest sustained step, and
the curve rate -> p50/p99 visibility (plotted). Stepping goes on past a step that misses the
visibility bound (the curve and the capacity are worth knowing) and stops at the first step where
the backlog grows or the generator cannot keep up; the queue drains between steps.

Then the low-latency tuning profile (no batching window, batches of 10) at 20 orders/s, beside the
default profile at the same rate: p99 POST -> readable and writer invocations per order.

CPU seconds per part (load generator + gateway + event source in this process, function workers,
ElasticMQ, moto, Cassandra when the benchmark's own node) are recorded per step, per order.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.proc_cpu import cpu_by_role, descendants_cpu
from benchmarks.results_file import BenchmarkResult, Goal
from orderpipe_common.settings import CassandraSettings
from orderpipe_common.tuning import TUNING_PROFILES, PipelineTuning
from orderpipe_devenv.aws.endpoints import local_aws
from orderpipe_devenv.processes import free_port
from orderpipe_devenv.runtime.pipeline import LocalRuntime, RuntimeConfig
from orderpipe_testkit.auth import for_producer
from orderpipe_testkit.loadgen import LoadConfig, run_load

VISIBILITY_BOUND_MS = 2_000
LOW_LATENCY_BOUND_MS = 500
LOW_LATENCY_RATE = 20.0
GOALS_ORDERS_PER_S = {"single": 150.0, "batch": 500.0}
BATCH_SIZE = 50


@dataclass(frozen=True)
class StepPlan:
    mode: str  # "single" (POST /orders) or "batch" (POST /orders/batch)
    rates: tuple[float, ...]
    batch_size: int


DEFAULT_PLANS = (
    StepPlan("single", (50, 100, 150, 200, 250, 300), 1),
    StepPlan("batch", (250, 500, 750, 1000, 1250), BATCH_SIZE),
)


class Pipeline:
    """A started local runtime with what the step test reads from it."""

    def __init__(self, runtime: LocalRuntime, cassandra_pids: Sequence[int]) -> None:
        self.runtime = runtime
        # Every request authenticates as the local runtime's default producer (a bearer token).
        self.auth = for_producer(runtime.default_producer())
        self.cassandra_pids = tuple(cassandra_pids)
        assert runtime.resources is not None
        self._sqs = runtime.client("sqs")
        self._queue_url = runtime.resources.queue_url

    def queue_depth(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def drain(self, timeout_s: float) -> float:
        """Wait until the queue is empty (at most timeout_s); the seconds it took."""
        started = time.monotonic()
        while self.queue_depth() > 0 and time.monotonic() - started < timeout_s:
            time.sleep(0.5)
        return time.monotonic() - started

    def writer_invocations(self) -> int:
        assert self.runtime.event_source is not None
        return self.runtime.event_source.stats.batches


@contextmanager
def pipeline(
    cassandra_env: dict[str, str], tuning: PipelineTuning, cassandra_pids: Sequence[int]
) -> Iterator[Pipeline]:
    for noisy in ("orderpipe.gateway", "orderpipe.event_source"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with local_aws("elasticmq") as aws:
        config = RuntimeConfig(
            port=free_port(),
            keyspace=CassandraSettings.from_environment(cassandra_env).get("cassandra_keyspace", "orderpipe"),
            tuning=tuning,
        )
        with LocalRuntime(
            config,
            cassandra_env=cassandra_env,
            aws_endpoint_url=aws.endpoint_url,
            sqs_endpoint_url=aws.sqs_endpoint_url,
        ) as runtime:
            yield Pipeline(runtime, cassandra_pids)


def run_step(
    pipe: Pipeline,
    *,
    rate: float,
    duration_s: float,
    batch_size: int,
    visibility_every_s: float,
    poll_s: float,
) -> dict[str, Any]:
    depth_before = pipe.queue_depth()
    invocations_before = pipe.writer_invocations()
    cpu_before = descendants_cpu()
    cassandra_before = _cassandra_cpu(pipe)
    load = run_load(
        LoadConfig(
            base_url=pipe.runtime.url,
            auth=pipe.auth,
            rate=rate,
            # Enough connections for the rate at a second per answer, so the generator is not the bound.
            concurrency=max(4, min(64, int(rate / batch_size) + 4)),
            duration_s=duration_s,
            batch_size=batch_size,
            visibility_every_s=visibility_every_s,
            visibility_poll_interval_s=poll_s,
            visibility_timeout_s=30,
        )
    )
    depth_after = pipe.queue_depth()
    cpu = cpu_by_role(cpu_before, descendants_cpu())
    if pipe.cassandra_pids:
        cpu["cassandra"] = round(_cassandra_cpu(pipe) - cassandra_before, 1)
    report = load.as_dict()
    accepted = report["orders_accepted"]
    visibility = report["visibility"]
    p99 = visibility["latency"]["p99_ms"]
    growth = depth_after - depth_before
    kept_up = report["orders_sent"] > 0 and report["throughput"]["orders_accepted_per_s"] >= 0.95 * rate
    no_backlog_growth = growth <= rate  # at most one second of the offered rate more than at the start
    within_bound = p99 is not None and not visibility["never_visible"] and p99 <= VISIBILITY_BOUND_MS
    return {
        "offered_orders_per_s": rate,
        "accepted_orders_per_s": report["throughput"]["orders_accepted_per_s"],
        "orders_accepted": accepted,
        "status_counts": report["status_counts"],
        "post_latency_ms": report["accept_latency"],
        "visibility_ms": visibility["latency"],
        "visibility_sampled": visibility["sampled"],
        "visibility_never_visible": visibility["never_visible"],
        "queue_depth_start": depth_before,
        "queue_depth_end": depth_after,
        "writer_invocations": pipe.writer_invocations() - invocations_before,
        "generator_late_requests": report["config"]["schedule_lag"]["late_requests"],
        "cpu_seconds_by_part": cpu,
        "cpu_ms_per_order_by_part": {
            part: round(seconds * 1000 / accepted, 3) for part, seconds in cpu.items() if accepted
        },
        "kept_up": kept_up,
        "no_backlog_growth": no_backlog_growth,
        "p99_within_bound": within_bound,
        "sustained": kept_up and no_backlog_growth and within_bound,
    }


def _cassandra_cpu(pipe: Pipeline) -> float:
    from benchmarks.proc_cpu import cpu_seconds

    return cpu_seconds(pipe.cassandra_pids)


def step_test(
    pipe: Pipeline,
    plan: StepPlan,
    *,
    duration_s: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    steps = []
    for rate in plan.rates:
        pipe.drain(timeout_s=60)
        step = run_step(
            pipe,
            rate=rate,
            duration_s=duration_s,
            batch_size=plan.batch_size,
            visibility_every_s=0.5,
            poll_s=0.1,
        )
        steps.append(step)
        progress(
            f"{plan.mode} {rate:.0f}/s: accepted {step['accepted_orders_per_s']:.0f}/s, readable p50 "
            f"{step['visibility_ms']['p50_ms']} ms p99 {step['visibility_ms']['p99_ms']} ms, queue "
            f"{step['queue_depth_start']} -> {step['queue_depth_end']}, "
            f"{'sustained' if step['sustained'] else 'NOT sustained'}; cpu ms/order {step['cpu_ms_per_order_by_part']}"
        )
        if not (step["kept_up"] and step["no_backlog_growth"]):
            break  # past capacity: every higher step only grows the backlog faster
    sustained = [s["offered_orders_per_s"] for s in steps if s["sustained"]]
    carried = [s["offered_orders_per_s"] for s in steps if s["kept_up"] and s["no_backlog_growth"]]
    return {
        "mode": plan.mode,
        "batch_size": plan.batch_size,
        "step_duration_s": duration_s,
        # The goal's figure: the highest step that met the visibility bound and everything else.
        "highest_sustained_orders_per_s": max(sustained, default=0.0),
        # Capacity: the highest step taken without backlog growth, whatever its visibility.
        "highest_without_backlog_growth_orders_per_s": max(carried, default=0.0),
        "steps": steps,
    }


def latency_profile(
    cassandra_env: dict[str, str],
    cassandra_pids: Sequence[int],
    profile: str,
    *,
    duration_s: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    tuning = TUNING_PROFILES[profile]
    with pipeline(cassandra_env, tuning, cassandra_pids) as pipe:
        # One warm-up step first: JIT-compiled ElasticMQ and warm function workers, as when running.
        run_step(pipe, rate=LOW_LATENCY_RATE, duration_s=5, batch_size=1, visibility_every_s=1, poll_s=0.05)
        pipe.drain(timeout_s=30)
        step = run_step(
            pipe,
            rate=LOW_LATENCY_RATE,
            duration_s=duration_s,
            batch_size=1,
            visibility_every_s=0.25,
            poll_s=0.02,
        )
    accepted = step["orders_accepted"] or 1
    step["writer_invocations_per_order"] = round(step["writer_invocations"] / accepted, 3)
    step["tuning"] = {
        "writer_batch_size": tuning.writer_batch_size,
        "writer_batching_window_seconds": tuning.writer_batching_window_seconds,
    }
    progress(
        f"{profile} at {LOW_LATENCY_RATE:.0f}/s: readable p50 {step['visibility_ms']['p50_ms']} ms, "
        f"p99 {step['visibility_ms']['p99_ms']} ms, {step['writer_invocations_per_order']} writer invocations/order"
    )
    return step


def plot_curves(curves: dict[str, dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.5), constrained_layout=True)
    axes = [axes] if len(curves) == 1 else list(axes)
    for axis, (mode, curve) in zip(axes, curves.items(), strict=True):
        steps = curve["steps"]
        rates = [s["offered_orders_per_s"] for s in steps]
        for key, label, color in (("p50_ms", "p50", "tab:green"), ("p99_ms", "p99", "tab:purple")):
            axis.plot(
                rates,
                [s["visibility_ms"][key] for s in steps],
                marker="o",
                label=f"POST -> readable {label}",
                color=color,
            )
        axis.axhline(VISIBILITY_BOUND_MS, color="tab:red", linestyle="--", label="2 s bound")
        for step in steps:
            if not step["sustained"]:
                axis.annotate(
                    "not sustained", (step["offered_orders_per_s"], step["visibility_ms"]["p99_ms"] or 0)
                )
        axis.set_yscale("log")
        axis.set_xlabel("offered orders / s")
        axis.set_ylabel("ms (log)")
        axis.set_title(
            f"{mode} POSTs (batch {curve['batch_size']}): sustained {curve['highest_sustained_orders_per_s']:.0f}/s"
        )
        axis.grid(alpha=0.3, which="both")
        axis.legend(loc="upper left")
    figure.suptitle(
        f"orderpipe local pipeline, step test on {os.cpu_count()} cores (load avg {os.getloadavg()[0]:.1f})"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def run(
    *,
    cassandra_env: dict[str, str],
    cassandra_pids: Sequence[int] = (),
    plans: Sequence[StepPlan] = DEFAULT_PLANS,
    step_duration_s: float = 20,
    latency_duration_s: float = 20,
    progress: Callable[[str], None] = print,
    plot_path: Path | None = None,
) -> BenchmarkResult:
    curves: dict[str, dict[str, Any]] = {}
    with pipeline(cassandra_env, TUNING_PROFILES["default"], cassandra_pids) as pipe:
        # Warm-up: ElasticMQ's JIT and the workers' first calls stay out of the first step.
        progress("warming up the pipeline (10 s at 50 orders/s)")
        run_step(pipe, rate=50, duration_s=10, batch_size=BATCH_SIZE, visibility_every_s=1, poll_s=0.1)
        for plan in plans:
            curves[plan.mode] = step_test(pipe, plan, duration_s=step_duration_s, progress=progress)
    profiles = {
        name: latency_profile(
            cassandra_env, cassandra_pids, name, duration_s=latency_duration_s, progress=progress
        )
        for name in ("low_latency", "default")
    }
    if plot_path is not None:
        plot_curves(curves, plot_path)
    ratios: dict[str, float] = {}
    goals: list[Goal] = []
    for mode, target in GOALS_ORDERS_PER_S.items():
        if mode in curves:
            ratios[f"{mode}_sustained_vs_{target:.0f}"] = (
                curves[mode]["highest_sustained_orders_per_s"] / target
            )
            goals.append(Goal(f"{mode}_sustained_vs_{target:.0f}", 1.0))
    low = profiles["low_latency"]["visibility_ms"]["p99_ms"]
    ratios["low_latency_p99_vs_500ms"] = (low if low is not None else 30_000.0) / LOW_LATENCY_BOUND_MS
    goals.append(Goal("low_latency_p99_vs_500ms", 1.0, "at_most"))
    return BenchmarkResult(
        benchmark="end_to_end",
        figures={
            "visibility_bound_ms": VISIBILITY_BOUND_MS,
            "step_test": curves,
            "latency_profiles_at_20_per_s": profiles,
        },
        ratios=ratios,
        goals=goals,
        notes=[
            f"Load generator (this process) -> API Gateway emulator -> ingest workers -> ElasticMQ -> "
            f"event-source emulator -> writer workers -> Cassandra, all on {os.cpu_count()} cores shared "
            "with whatever else runs on the machine (see load_average).",
            "Sustained step: >= 95 % of the offered orders accepted, p99 POST -> readable <= 2 s (one sampled "
            "order every 0.5 s, polled every 100 ms), queue depth grew by at most one second of the rate.",
            "Latency profiles: single POSTs at 20/s for each tuning profile after a 5 s warm-up; one sampled "
            "order every 0.25 s polled every 20 ms.",
        ],
    )
