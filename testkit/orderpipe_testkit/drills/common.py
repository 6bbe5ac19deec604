"""What every drill shares: its own local runtime, counting, waiting, and the report it prints."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from orderpipe_common.tuning import DEFAULT_TUNING, PipelineTuning
from orderpipe_devenv.aws import resources as aws_resources
from orderpipe_devenv.aws.moto_server import MotoServerProcess
from orderpipe_devenv.processes import free_port
from orderpipe_devenv.runtime.pipeline import LOCAL_REGION, LocalRuntime, RuntimeConfig
from orderpipe_ops.queues import QueuePair, inspect_dlq
from orderpipe_testkit.auth import for_producer

log = logging.getLogger("orderpipe.drills")

# Short timings, as in the e2e tests: a 2 s writer (visibility 12 s), the DLQ after 2 receives (an
# outage budget of 12 s, the age alarm at 5 s).
SHORT_TUNING = DEFAULT_TUNING.with_overrides(
    {
        "writer_timeout_seconds": 2,
        "max_receive_count": 2,
        "writer_batching_window_seconds": 1,
        "alarm_oldest_message_age_seconds": 5,
    }
)
DRILL_PREFIX = "orderpipe-drill"


class CassandraEndpointLike(Protocol):
    def settings_env(self, keyspace: str) -> dict[str, str]: ...


class Outage(Protocol):
    """Stops and starts the database (or one node of it)."""

    def stop(self) -> None: ...
    def start(self) -> None: ...


class DrillFailedError(AssertionError):
    """A drill's promise did not hold; the message says which."""


@dataclass
class DrillReport:
    name: str
    sent: int = 0
    accepted: int = 0
    readable: int = 0
    in_dlq: int = 0
    lost: int = 0
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "readable": self.readable,
            "in_dlq": self.in_dlq,
            "lost": self.lost,
        }

    def line(self) -> str:
        counts = "  ".join(f"{name}={value}" for name, value in self.counts().items())
        return f"drill {self.name}: {counts}  ({self.seconds:.1f} s)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "drill": self.name,
            **self.counts(),
            "seconds": round(self.seconds, 1),
            "details": self.details,
        }

    def __str__(self) -> str:
        extra = "".join(f"\n  {name}: {value}" for name, value in self.details.items())
        return self.line() + extra


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DrillFailedError(message)


def wait_until(condition: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DrillFailedError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def unique_keyspace(name: str) -> str:
    return f"drill_{name}_{uuid.uuid4().hex[:8]}"


@contextmanager
def drill_runtime(
    cassandra: CassandraEndpointLike,
    *,
    name: str,
    tuning: PipelineTuning = SHORT_TUNING,
    replication: dict[str, str | int] | None = None,
    before_start: Callable[[Any, aws_resources.PipelineResources], None] | None = None,
    writer_env: dict[str, str] | None = None,
    cassandra_secrets: Callable[[str], dict[str, str]] | None = None,
) -> Iterator[LocalRuntime]:
    """The whole pipeline on its own moto server and keyspace; everything stops at the end.

    `before_start(sqs, resources)` runs after the queues exist and before any function polls them.
    `cassandra_secrets(moto_endpoint_url)` puts secrets the functions read into the drill's moto
    before anything starts, and returns the Cassandra settings naming them (applied over the rest).
    """
    keyspace = unique_keyspace(name)
    with MotoServerProcess() as moto:
        runtime_env = {**cassandra.settings_env(keyspace), **(writer_env or {})}
        if cassandra_secrets is not None:
            runtime_env.update(cassandra_secrets(moto.endpoint_url))
        config = RuntimeConfig(
            port=free_port(),
            keyspace=keyspace,
            tuning=tuning,
            name_prefix=DRILL_PREFIX,
        )
        if replication:
            config = dataclasses.replace(config, replication=replication)
        started = time.monotonic()
        runtime = LocalRuntime(config, cassandra_env=runtime_env, aws_endpoint_url=moto.endpoint_url)
        if before_start is not None:
            sqs = runtime.client("sqs")
            resources = aws_resources.create_pipeline_resources(
                DRILL_PREFIX,
                tuning=tuning,
                sqs=sqs,
                dynamodb=runtime.client("dynamodb"),
                cloudwatch=runtime.client("cloudwatch"),
            )
            before_start(sqs, resources)
        try:
            with runtime:
                log.info("drill %s: runtime up in %.1f s", name, time.monotonic() - started)
                yield runtime
        finally:
            close_row_session(keyspace)


def api_client(runtime: LocalRuntime, timeout: float = 10) -> httpx.Client:
    """An HTTP client authenticated as the runtime's default producer (auth is on, as deployed)."""
    return httpx.Client(base_url=runtime.url, auth=for_producer(runtime.default_producer()), timeout=timeout)


def queues_of(runtime: LocalRuntime) -> QueuePair:
    assert runtime.resources is not None, "the runtime is not started"
    return QueuePair(queue_url=runtime.resources.queue_url, dlq_url=runtime.resources.dlq_url)


def queue_counts(runtime: LocalRuntime, url: str) -> tuple[int, int]:
    attributes = runtime.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def wait_drained(runtime: LocalRuntime, *, timeout: float) -> None:
    """Until the orders queue holds nothing, visible or in flight."""
    queue_url = queues_of(runtime).queue_url
    wait_until(
        lambda: queue_counts(runtime, queue_url) == (0, 0),
        timeout=timeout,
        interval=0.5,
        what="the queue to drain",
    )


def readable_ids(runtime: LocalRuntime, order_ids: Sequence[str], *, workers: int = 4) -> set[str]:
    """The ids among `order_ids` that GET /orders/{id} answers with 200."""

    def is_readable(client: httpx.Client, order_id: str) -> bool:
        return client.get(f"/orders/{order_id}").status_code == 200

    with api_client(runtime) as client, ThreadPoolExecutor(workers) as pool:
        flags = list(pool.map(lambda order_id: is_readable(client, order_id), order_ids))
    return {order_id for order_id, ok in zip(order_ids, flags, strict=True) if ok}


def wait_readable(runtime: LocalRuntime, order_ids: Sequence[str], *, timeout: float) -> set[str]:
    """Poll until every id is readable or `timeout` passes; returns the readable ones."""
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while True:
        found |= readable_ids(runtime, [i for i in order_ids if i not in found])
        if len(found) == len(set(order_ids)) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def dlq_contents(runtime: LocalRuntime) -> tuple[set[str], list[str]]:
    """(order ids of decodable DLQ messages, bodies of undecodable ones), nothing consumed."""
    letters = inspect_dlq(runtime.client("sqs"), queues_of(runtime).dlq_url, max_messages=100_000)
    return {x.order_id for x in letters if x.order_id}, [x.body for x in letters if not x.order_id]


_row_sessions: dict[str, Any] = {}  # keyspace -> (cluster, session), closed when the drill's runtime stops


def _row_session(runtime: LocalRuntime) -> Any:
    from orderpipe_common import cassandra_session
    from orderpipe_common.settings import CassandraSettings, from_mapping

    keyspace = runtime.config.keyspace
    if keyspace not in _row_sessions:
        settings = from_mapping(CassandraSettings, runtime.cassandra_env)
        cluster = cassandra_session.build_cluster(settings)
        _row_sessions[keyspace] = (cluster, cluster.connect(keyspace))
    return _row_sessions[keyspace][1]


def close_row_session(keyspace: str) -> None:
    """Close the assertion session of a drill's keyspace (when its runtime stops)."""
    cluster, _session = _row_sessions.pop(keyspace, (None, None))
    if cluster is not None:
        cluster.shutdown()


def stored_rows(runtime: LocalRuntime, order_ids: Sequence[str] | None = None) -> dict[str, tuple[Any, ...]]:
    """The rows of the runtime's orders table (all, or those of `order_ids`) by order_id, read with CQL."""
    from orderpipe_common.order_rows import ORDER_COLUMNS

    wanted = set(order_ids) if order_ids is not None else None
    rows = _row_session(runtime).execute(f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders")  # noqa: S608
    result: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        key = str(row[0])
        if wanted is not None and key not in wanted:
            continue
        if key in result:
            raise DrillFailedError(f"order {key} stored twice")
        result[key] = tuple(row)
    return result


def account(
    report: DrillReport, runtime: LocalRuntime, accepted_ids: Sequence[str], *, timeout: float
) -> None:
    """Fill readable / in_dlq / lost for the accepted orders: lost = accepted, neither readable nor in the DLQ."""
    readable = wait_readable(runtime, accepted_ids, timeout=timeout)
    in_dlq, _unreadable = dlq_contents(runtime)
    report.readable = len(readable)
    report.in_dlq = len(in_dlq & set(accepted_ids))
    lost = set(accepted_ids) - readable - in_dlq
    report.lost = len(lost)
    if lost:
        report.details["lost ids (first 5)"] = sorted(lost)[:5]


class SteadyLoad:
    """POST /orders at a fixed rate from a thread, bounded by `max_requests`; records each answer."""

    def __init__(
        self, runtime: LocalRuntime, *, rate_per_second: float, max_requests: int, seed: int = 0
    ) -> None:
        self._runtime = runtime
        self._interval = 1 / rate_per_second
        self._max = max_requests
        self._seed = seed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)
        self.sent = 0
        self.accepted_ids: list[str] = []
        # The seed of each accepted order's payload (`order_payload(seed)` gives its content again).
        self.accepted_seeds: dict[str, int] = {}
        self.statuses: dict[int, int] = {}
        self.errors = 0

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        from orderpipe_testkit.sample_orders import order_payload

        next_at = time.monotonic()
        with api_client(self._runtime) as client:
            while not self._stop.is_set() and self.sent < self._max:
                seed = self._seed + self.sent
                payload = order_payload(seed)
                self.sent += 1
                try:
                    response = client.post("/orders", json=payload)
                except httpx.HTTPError:
                    self.errors += 1
                else:
                    self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                    if response.status_code == 202:
                        order_id = response.json()["order_id"]
                        self.accepted_ids.append(order_id)
                        self.accepted_seeds[order_id] = seed
                next_at += self._interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))


def region() -> str:
    return LOCAL_REGION


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)


class ClusterOutage:
    """Stops and starts nodes of an embedded `CassandraCluster` (all of them by default)."""

    def __init__(self, cluster: Any, nodes: Sequence[int] | None = None) -> None:
        self.cluster = cluster
        self.nodes = list(nodes) if nodes is not None else [node.spec.index for node in cluster.nodes]

    def stop(self) -> None:
        for index in reversed(self.nodes):
            self.cluster.stop_node(index)

    def start(self) -> None:
        for index in self.nodes:
            if not self.cluster.nodes[index - 1].is_running():
                self.cluster.start_node(index)
