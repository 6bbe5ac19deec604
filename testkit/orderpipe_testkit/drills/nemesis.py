"""Drill 8: the nemesis soak. Steady load while a seeded random schedule of faults hits the pipeline
(like Jepsen's nemesis), then a checker over everything that was answered.

The pipeline runs on real parts: Cassandra (one node, or three with RF 3), ElasticMQ for SQS, moto for
DynamoDB, the real handlers behind the API Gateway and SQS event-source emulators, and Toxiproxy
between the functions and each dependency. The faults, one after another with gaps between them:

- Toxiproxy toxics on Cassandra (every node, or one), SQS or DynamoDB: `black-hole`, `latency`,
  `reset` (the server resets every connection), `bandwidth`, `limit-data`, `down` (connections refused);
- `kill-writer`: a writer execution environment SIGKILLed in the middle of whatever it does;
- `kill-node`: a Cassandra node SIGKILLed, and started again after a while (the only node: a full
  outage; one of three: LOCAL_QUORUM still holds).

Producers POST orders (single and batches of three) at a steady rate, each with its own
Idempotency-Key, retrying 503/409/429 and lost answers with the same key and body, as a careful
producer does; readers GET accepted orders meanwhile. Then every fault is healed, the queue drains,
and the checker holds the pipeline to its promises:

- every 202'd order is readable with exactly the posted content (lost = accepted, neither readable
  nor in the DLQ; mismatched = readable with other content);
- no order stored twice under two ids (duplicated);
- no unanswered request, no 5xx from a function (a 503 is the designed answer; 500/502/504 are
  not, a Lambda timeout shows as a 502), no function timeout;
- the DLQ is empty when every fault was shorter than the Cassandra outage budget.

`late answers` counts answers that took longer than the 3 s the API promises (queueing for a free
execution environment included): reported, not a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from orderpipe_common.envelope import parse_envelope
from orderpipe_common.model import Order, OrderRequest
from orderpipe_common.tuning import DEFAULT_TUNING, PipelineTuning
from orderpipe_devenv.aws.endpoints import local_aws
from orderpipe_devenv.processes import free_port
from orderpipe_devenv.runtime.faults import FAULTS, FaultProxies, heal, inject
from orderpipe_devenv.runtime.pipeline import LocalRuntime, RuntimeConfig
from orderpipe_devenv.toxiproxy import ToxiproxyServer
from orderpipe_testkit.drills.common import (
    CassandraEndpointLike,
    DrillReport,
    api_client,
    close_row_session,
    dlq_contents,
    queue_counts,
    queues_of,
    stored_rows,
    unique_keyspace,
)
from orderpipe_testkit.sample_orders import order_payload

log = logging.getLogger("orderpipe.drills.nemesis")

# A 5 s writer (visibility 30 s), 10 receives: orders reach the DLQ after 270 s of Cassandra outage,
# far longer than any fault here; the age alarm at 60 s.
NEMESIS_TUNING = DEFAULT_TUNING.with_overrides(
    {
        "writer_timeout_seconds": 5,
        "max_receive_count": 10,
        "alarm_oldest_message_age_seconds": 60,
        "writer_batching_window_seconds": 1,
    }
)
ANSWER_WITHIN_SECONDS = 3.0  # what the API promises, a 503 at worst
CLIENT_TIMEOUT_SECONDS = 30.0  # API Gateway's integration timeout is 29 s: past it, "unanswered"
GIVE_UP_SECONDS = 150.0  # a producer stops retrying one order after this
TOXIC_KINDS = ("black-hole", "latency", "reset", "bandwidth", "limit-data", "down")
SIZES = {"latency": (50, 200, 500, 1000, 2500), "bandwidth": (2, 10, 50), "limit-data": (300, 2000, 20000)}
# How often each kind is drawn (toxics on one of three dependencies, kills on their own).
WEIGHTS = {
    "black-hole": 4,
    "latency": 4,
    "reset": 3,
    "bandwidth": 1,
    "limit-data": 2,
    "down": 2,
    "kill-writer": 2,
    "kill-node": 1,
}


# --- the schedule ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedFault:
    at: float  # seconds after the load started
    kind: str
    target: str  # cassandra, cassandra-N, sqs, dynamodb, writer, node-N
    seconds: float  # how long it lasts (a kill-writer is instantaneous)
    size: int | None = None

    def describe(self) -> str:
        kind = FAULTS.get(self.kind)
        size = f" {self.size} {kind.unit}" if kind is not None and kind.unit and self.size is not None else ""
        lasting = f" for {self.seconds:.0f} s" if self.seconds else ""
        return f"{self.kind}{size} on {self.target}{lasting}"


def plan(
    *, seed: int, seconds: float, nodes: int, kill_nodes: bool, warm_up: float = 8.0, cool_down: float = 10.0
) -> list[PlannedFault]:
    """A seeded random schedule: faults one after another, 2-8 s apart, until `seconds - cool_down`.

    Kinds are dealt from a shuffled deck (each kind as often as its weight, reshuffled when empty), so
    even a short run meets many kinds; targets, sizes and durations are drawn at random.
    """
    rng = random.Random(seed)
    deck: list[str] = []
    cassandra_targets = ["cassandra"] + ([f"cassandra-{i}" for i in range(1, nodes + 1)] if nodes > 1 else [])
    faults: list[PlannedFault] = []
    at = warm_up
    while at < seconds - cool_down:
        if not deck:
            deck = [
                kind
                for kind, weight in WEIGHTS.items()
                for _ in range(weight)
                if kill_nodes or kind != "kill-node"
            ]
            rng.shuffle(deck)
        kind = deck.pop()
        if kind == "kill-writer":
            fault = PlannedFault(at, kind, "writer", 0.0)
        elif kind == "kill-node":
            fault = PlannedFault(at, kind, f"node-{rng.randint(1, nodes)}", round(rng.uniform(3, 12), 1))
        else:
            target = rng.choice([*cassandra_targets, "sqs", "dynamodb"])
            size = rng.choice(SIZES[kind]) if kind in SIZES else None
            fault = PlannedFault(at, kind, target, round(rng.uniform(3, 12), 1), size)
        faults.append(fault)
        at = round(at + fault.seconds + rng.uniform(2, 8), 1)
    return faults


@dataclass
class InjectedFault:
    fault: PlannedFault
    started: float = 0.0  # seconds after the load started
    ended: float = 0.0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.fault),
            "description": self.fault.describe(),
            "started": round(self.started, 1),
            "ended": round(self.ended, 1),
            "lasted": round(self.ended - self.started, 1),
            "note": self.note,
        }


class Nemesis:
    """Injects the planned faults, on the main thread (a restarted Cassandra node dies with the
    thread that started it)."""

    def __init__(
        self, *, proxies: FaultProxies, runtime: LocalRuntime, cluster: Any | None, rng_seed: int
    ) -> None:
        self.proxies = proxies
        self.runtime = runtime
        self.cluster = cluster
        self._rng = random.Random(rng_seed)
        self.injected: list[InjectedFault] = []
        self.problems: list[str] = []  # what the nemesis itself could not do (the drill is then void)

    def run(self, schedule: Sequence[PlannedFault], *, started: float, until: float) -> None:
        for fault in schedule:
            wait = started + fault.at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() - started > until:
                break
            self.injected.append(self._inject(fault, started))
        time.sleep(max(0.0, started + until - time.monotonic()))

    def _inject(self, fault: PlannedFault, started: float) -> InjectedFault:
        record = InjectedFault(fault, started=time.monotonic() - started)
        log.info("nemesis: %s", fault.describe())
        try:
            if fault.kind == "kill-writer":
                record.note = self._kill_writer()
            elif fault.kind == "kill-node":
                record.note = self._kill_node(int(fault.target.split("-")[1]), fault.seconds)
            else:
                proxies = self.proxies.named(fault.target)
                inject(proxies, fault.kind, fault.size)
                try:
                    time.sleep(fault.seconds)
                finally:
                    heal(proxies)
        except Exception as error:  # the drill goes on; the report says what could not be done
            record.note = f"the nemesis failed: {type(error).__name__}: {str(error)[:200]}"
            self.problems.append(f"{fault.describe()}: {record.note}")
        finally:
            record.ended = time.monotonic() - started
        return record

    def restart_stopped_nodes(self) -> None:
        if self.cluster is None:
            return
        for index, node in enumerate(self.cluster.nodes, start=1):
            if not node.is_running():
                try:
                    self._start_node(index)
                except Exception as error:
                    self.problems.append(f"node {index} could not be started again: {error}")

    def _kill_writer(self) -> str:
        pids = self.runtime.functions["writer"].worker_pids()
        if not pids:
            return "no writer process was running"
        pid = self._rng.choice(pids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return f"SIGKILLed writer pid {pid} of {len(pids)}"

    def _kill_node(self, index: int, down_seconds: float) -> str:
        assert self.cluster is not None
        node = self.cluster.nodes[index - 1]
        pid = node.pid
        node.kill()
        time.sleep(down_seconds)
        restarted = time.monotonic()
        self._start_node(index)
        return f"SIGKILLed node {index} (pid {pid}); started again in {time.monotonic() - restarted:.0f} s"

    def _start_node(self, index: int, attempts: int = 3) -> None:
        assert self.cluster is not None
        for attempt in range(1, attempts + 1):
            try:
                self.cluster.start_node(index)
                return
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("node %d did not start (attempt %d); trying again in 5 s", index, attempt)
                time.sleep(5)


# --- the load ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    route: str  # "POST /orders", "POST /orders/batch", "GET /orders/{id}"
    status: int | None  # None: no answer (timeout, connection error)
    seconds: float
    error: str = ""


@dataclass
class Recorder:
    """Every request's outcome, from many threads."""

    attempts: list[Attempt] = field(default_factory=list)
    posted: dict[int, dict[str, Any]] = field(default_factory=dict)  # order number -> payload
    accepted: dict[str, int] = field(default_factory=dict)  # order_id -> order number
    gave_up: list[int] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    read_mismatches: list[str] = field(default_factory=list)
    dead_threads: list[str] = field(default_factory=list)  # load threads ended by an exception
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def thread_died(self, error: BaseException) -> None:
        log.exception("%s ended by an exception", threading.current_thread().name)
        with self.lock:
            self.dead_threads.append(f"{threading.current_thread().name}: {type(error).__name__}: {error}")


def _customer(number: int, run: str) -> str:
    return f"nemesis-{run}-{number}"


def _payload(number: int, run: str, seed: int) -> dict[str, Any]:
    payload = order_payload(random.Random(f"{seed}-{number}"))
    payload["customer_id"] = _customer(number, run)  # names the order: two rows with it are a duplicate
    payload.pop("client_reference", None)
    return payload


def same_content(order: Order, payload: dict[str, Any]) -> bool:
    posted = OrderRequest.model_validate(payload)
    return all(getattr(order, name) == getattr(posted, name) for name in OrderRequest.model_fields)


class Producers:
    """POSTs at a steady rate from `workers` threads; each order retried until answered 202."""

    def __init__(
        self, runtime: LocalRuntime, recorder: Recorder, *, rate: float, workers: int, seed: int, run: str
    ) -> None:
        self._runtime = runtime
        self._recorder = recorder
        self._interval = 1 / rate
        self._seed, self._run = seed, run
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next_number = 0
        self._next_at = time.monotonic()
        self._threads = [
            threading.Thread(target=self._work, name=f"producer-{i}", daemon=True) for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, *, timeout: float) -> None:
        """No new orders; the ones under way go on until answered (or given up)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)

    def _take(self) -> int | None:
        with self._lock:
            wait = self._next_at - time.monotonic()
            self._next_at = max(self._next_at, time.monotonic()) + self._interval
            number = self._next_number
            self._next_number += 1
        if wait > 0 and self._stop.wait(wait):
            return None
        return None if self._stop.is_set() else number

    def _work(self) -> None:
        try:
            self._produce()
        except Exception as error:  # less load than the drill claims: a failure, not a silent thread
            self._recorder.thread_died(error)

    def _produce(self) -> None:
        with api_client(self._runtime, timeout=CLIENT_TIMEOUT_SECONDS) as http:
            while (number := self._take()) is not None:
                if number % 10 == 9:  # every tenth request a batch of three
                    numbers = [number * 10 + i for i in range(3)]
                    self._send(http, "/orders/batch", numbers)
                else:
                    self._send(http, "/orders", [number * 10])

    def _send(self, http: httpx.Client, path: str, numbers: list[int]) -> None:
        payloads = [_payload(n, self._run, self._seed) for n in numbers]
        with self._recorder.lock:
            self._recorder.posted.update(zip(numbers, payloads, strict=True))
        body: Any = payloads if path.endswith("batch") else payloads[0]
        key = f"{self._run}-{'-'.join(map(str, numbers))}"
        answer = self._until_answered(http, path, body, key)
        if answer is None:
            with self._recorder.lock:
                self._recorder.gave_up.extend(numbers)
            return
        if path == "/orders":
            with self._recorder.lock:
                self._recorder.accepted[answer["order_id"]] = numbers[0]
            return
        retry: list[int] = []
        with self._recorder.lock:
            for result in answer["results"]:
                number = numbers[result["index"]]
                if result["status"] == "accepted":
                    self._recorder.accepted[result["order_id"]] = number
                elif result["status"] == "failed":  # valid, not taken: send again on its own, a new key
                    retry.append(number)
                else:
                    self._recorder.rejected.append(f"batch order {number}: {result}")
        for number in retry:
            self._send(http, "/orders", [number])

    def _until_answered(self, http: httpx.Client, path: str, body: Any, key: str) -> dict[str, Any] | None:
        """The 202's body, retrying (same key, same body) what a producer retries; None: gave up."""
        route = f"POST {path}"
        give_up_at = time.monotonic() + GIVE_UP_SECONDS
        attempt = 0
        while time.monotonic() < give_up_at:
            attempt += 1
            started = time.monotonic()
            try:
                response = http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.HTTPError as error:
                self._recorder.attempt(Attempt(route, None, time.monotonic() - started, type(error).__name__))
                time.sleep(min(5.0, 0.25 * 2**attempt) * random.random())
                continue
            self._recorder.attempt(Attempt(route, response.status_code, time.monotonic() - started))
            if response.status_code == 202:
                return dict(response.json())
            if response.status_code in {409, 429} or response.status_code >= 500:
                hint = float(response.headers.get("retry-after", "1"))
                time.sleep(min(hint, 5.0) * random.uniform(0.5, 1.0))
                continue
            with self._recorder.lock:
                self._recorder.rejected.append(f"{route} {key}: {response.status_code} {response.text[:200]}")
            return None
        return None


class Readers:
    """GETs of accepted orders meanwhile: a 200 must carry exactly the posted order."""

    def __init__(self, runtime: LocalRuntime, recorder: Recorder, *, rate: float, seed: int) -> None:
        self._runtime = runtime
        self._recorder = recorder
        self._interval = 1 / rate
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)

    def _work(self) -> None:
        try:
            self._read()
        except Exception as error:
            self._recorder.thread_died(error)

    def _read(self) -> None:
        with api_client(self._runtime, timeout=CLIENT_TIMEOUT_SECONDS) as http:
            while not self._stop.wait(self._interval):
                with self._recorder.lock:
                    if not self._recorder.accepted:
                        continue
                    order_id, number = self._rng.choice(list(self._recorder.accepted.items()))
                    payload = self._recorder.posted[number]
                read_and_check(http, self._recorder, order_id, payload)


def read_and_check(
    http: httpx.Client, recorder: Recorder, order_id: str, payload: dict[str, Any]
) -> int | None:
    started = time.monotonic()
    try:
        response = http.get(f"/orders/{order_id}")
    except httpx.HTTPError as error:
        recorder.attempt(Attempt("GET /orders/{id}", None, time.monotonic() - started, type(error).__name__))
        return None
    recorder.attempt(Attempt("GET /orders/{id}", response.status_code, time.monotonic() - started))
    if response.status_code == 200 and not same_content(Order.model_validate_json(response.text), payload):
        with recorder.lock:
            recorder.read_mismatches.append(order_id)
    return response.status_code


# --- the report ---------------------------------------------------------------------------------------


@dataclass
class NemesisReport(DrillReport):
    """A drill report (sent = orders posted) with what the nemesis adds."""

    name: str = "nemesis"
    seed: int = 0
    minutes: float = 0.0
    nodes: int = 1
    duplicated: int = 0
    late_answers: int = 0
    faults: list[InjectedFault] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def counts(self) -> dict[str, int]:
        return {**super().counts(), "duplicated": self.duplicated, "late_answers": self.late_answers}

    def line(self) -> str:
        counts = "  ".join(f"{name.replace('_', ' ')}={value}" for name, value in self.counts().items())
        kinds = len({f.fault.kind for f in self.faults})
        return f"drill nemesis: {counts}  faults={len(self.faults)} of {kinds} kinds"

    def schedule_lines(self) -> list[str]:
        return [
            f"  {f.started:6.1f}-{f.ended:6.1f} s  {f.fault.describe()}" + (f"  ({f.note})" if f.note else "")
            for f in self.faults
        ]

    def __str__(self) -> str:
        lines = ["schedule:", *self.schedule_lines(), self.line()]
        lines += [f"  {name}: {value}" for name, value in self.details.items()]
        lines += [f"  FAILED: {failure}" for failure in self.failures] or ["  every promise held"]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "drill": "nemesis",
            "seed": self.seed,
            "minutes": self.minutes,
            "nodes": self.nodes,
            **self.counts(),
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
            "failures": self.failures,
            "faults_injected": len(self.faults),
            "fault_kinds": sorted({f.fault.kind for f in self.faults}),
            "schedule": [f.as_dict() for f in self.faults],
            "details": self.details,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=1, default=str) + "\n")


# --- running it ---------------------------------------------------------------------------------------


@contextmanager
def nemesis_runtime(
    cassandra: CassandraEndpointLike,
    *,
    contact_points: Sequence[str],
    port: int,
    tuning: PipelineTuning = NEMESIS_TUNING,
    replication: dict[str, str | int] | None = None,
) -> Iterator[tuple[LocalRuntime, FaultProxies]]:
    """The pipeline with ElasticMQ and moto of its own, Toxiproxy between the functions and each dependency."""
    keyspace = unique_keyspace("nemesis")
    with ExitStack() as stack:
        stack.callback(close_row_session, keyspace)
        aws = stack.enter_context(local_aws("elasticmq"))
        toxiproxy = stack.enter_context(ToxiproxyServer())
        proxies = FaultProxies.between(
            toxiproxy.client,
            cassandra_hosts=list(contact_points),
            cassandra_port=port,
            sqs_endpoint_url=aws.sqs_endpoint_url or aws.endpoint_url,
            dynamodb_endpoint_url=aws.endpoint_url,
        )
        config = RuntimeConfig(
            port=free_port(),
            keyspace=keyspace,
            tuning=tuning,
            name_prefix="orderpipe-nemesis",
            ingest_concurrency=4,
            reader_concurrency=2,
            # Every 503 under a fault is logged with its cause at WARNING: the report tells the story.
            function_log_level="ERROR",
        )
        if replication:
            config = dataclasses.replace(config, replication=replication)
        runtime = stack.enter_context(
            LocalRuntime(
                config,
                cassandra_env=cassandra.settings_env(keyspace),
                aws_endpoint_url=aws.endpoint_url,
                sqs_endpoint_url=aws.sqs_endpoint_url,
                network_env=proxies.function_env(),
            )
        )
        yield runtime, proxies


def run_nemesis(
    cassandra: CassandraEndpointLike,
    *,
    contact_points: Sequence[str],
    port: int,
    cluster: Any | None,
    minutes: float,
    seed: int,
    rate: float = 8.0,
    replication: dict[str, str | int] | None = None,
    progress: Any = None,
) -> NemesisReport:
    """Load, faults, heal, check. `cluster` (an embedded CassandraCluster) allows `kill-node`."""
    nodes = len(contact_points)
    report = NemesisReport(seed=seed, minutes=minutes, nodes=nodes)
    seconds = minutes * 60
    schedule = plan(seed=seed, seconds=seconds, nodes=nodes, kill_nodes=cluster is not None)
    load_before = os.getloadavg()
    run = uuid.uuid4().hex[:6]
    drill_started = time.monotonic()
    with nemesis_runtime(cassandra, contact_points=contact_points, port=port, replication=replication) as (
        runtime,
        proxies,
    ):
        recorder = Recorder()
        producers = Producers(runtime, recorder, rate=rate, workers=6, seed=seed, run=run)
        readers = Readers(runtime, recorder, rate=3.0, seed=seed)
        nemesis = Nemesis(proxies=proxies, runtime=runtime, cluster=cluster, rng_seed=seed)
        stored = StoredByWriter()
        if runtime.event_source is not None:
            runtime.event_source.on_deleted = stored.add
        started = time.monotonic()
        producers.start()
        readers.start()
        try:
            nemesis.run(schedule, started=started, until=seconds)
        finally:
            heal(proxies.all)
            nemesis.restart_stopped_nodes()
            readers.stop()
            producers.stop(timeout=GIVE_UP_SECONDS + CLIENT_TIMEOUT_SECONDS)
        report.faults = nemesis.injected
        report.failures += nemesis.problems
        load_seconds = time.monotonic() - started
        _check(report, runtime, recorder, stored, tuning=runtime.config.tuning)
        report.details["load"] = (
            f"{load_seconds:.0f} s at {rate:g} requests/s, {len(recorder.attempts)} requests"
        )
        report.seconds = time.monotonic() - drill_started
        report.details["machine load average (1 min) before / after"] = (
            f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
    return report


class StoredByWriter:
    """The order ids whose messages the event source deleted because the writer reported them stored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.order_ids: set[str] = set()

    def add(self, messages: list[dict[str, Any]]) -> None:
        ids = set()
        for message in messages:
            with contextlib.suppress(Exception):  # an undecodable message is not an order
                ids.add(str(parse_envelope(message["Body"]).order_id))
        with self._lock:
            self.order_ids |= ids


def _check(
    report: NemesisReport,
    runtime: LocalRuntime,
    recorder: Recorder,
    stored: StoredByWriter,
    *,
    tuning: PipelineTuning,
) -> None:
    budget = tuning.cassandra_outage_budget_seconds
    # Everything accepted is written or in the DLQ once the queue is empty (failed batches come back
    # after the visibility timeout; a restarted node may take a while).
    drained_by = time.monotonic() + 4 * tuning.visibility_timeout_seconds + 60
    while queue_counts(runtime, queues_of(runtime).queue_url) != (0, 0) and time.monotonic() < drained_by:
        time.sleep(1)
    remaining = queue_counts(runtime, queues_of(runtime).queue_url)
    if remaining != (0, 0):
        report.failures.append(f"the queue did not drain: {remaining[0]} visible, {remaining[1]} in flight")

    posted, accepted = recorder.posted, dict(recorder.accepted)
    report.sent, report.accepted = len(posted), len(accepted)
    readable = _verify_readable(runtime, recorder, accepted, posted)
    in_dlq, undecodable = dlq_contents(runtime)
    report.readable = len(readable)
    report.in_dlq = len(in_dlq & set(accepted))
    lost = set(accepted) - readable - in_dlq
    report.lost = len(lost)

    rows_by_customer: dict[str, set[str]] = {}
    for order_id, customer in _stored_customers(runtime):
        rows_by_customer.setdefault(customer, set()).add(order_id)
    duplicated = {customer: ids for customer, ids in rows_by_customer.items() if len(ids) > 1}
    report.duplicated = len(duplicated)
    accepted_customers = {posted[number]["customer_id"] for number in accepted.values()}
    never_acknowledged = set(rows_by_customer) - accepted_customers

    attempts = recorder.attempts
    statuses: dict[str, Counter[str]] = {}
    for attempt in attempts:
        statuses.setdefault(attempt.route, Counter())[str(attempt.status or attempt.error)] += 1
    unanswered = [a for a in attempts if a.status is None]
    server_errors = [a for a in attempts if a.status is not None and a.status >= 500 and a.status != 503]
    report.late_answers = sum(a.status is not None and a.seconds > ANSWER_WITHIN_SECONDS for a in attempts)
    timeouts = {name: function.timeouts for name, function in runtime.functions.items()}
    longest = max((f.ended - f.started for f in report.faults), default=0.0)

    report.details.update(
        {
            "answers": {route: dict(sorted(counter.items())) for route, counter in sorted(statuses.items())},
            "answer seconds p50 / p99 / max": _percentiles(
                [a.seconds for a in attempts if a.status is not None]
            ),
            "function timeouts": timeouts,
            "slowest invocation per function (s)": {
                name: round(function.slowest_seconds, 2) for name, function in runtime.functions.items()
            },
            "writer batches failed by the event source (crashes)": _handler_errors(runtime),
            "stored but never acknowledged (the producer gave up)": len(never_acknowledged),
            "Cassandra outage budget / longest fault": f"{budget} s / {longest:.0f} s",
        }
    )
    failures = report.failures
    if report.lost:
        # Which side lost them: Cassandra forgot a write it had acknowledged (the message is gone
        # because the writer reported it stored), or the order never got that far.
        forgotten = lost & stored.order_ids
        failures.append(
            f"{report.lost} accepted orders lost (first: {sorted(lost)[:3]}); {len(forgotten)} of them "
            "were reported stored by the writer and their messages deleted (Cassandra lost an "
            "acknowledged write), the others never were"
        )
    if report.duplicated:
        failures.append(
            f"{report.duplicated} orders stored under two ids (first: {list(duplicated.items())[:2]})"
        )
    mismatched = set(recorder.read_mismatches)
    if mismatched:
        failures.append(
            f"{len(mismatched)} orders read back with other content (first: {sorted(mismatched)[:3]})"
        )
    if unanswered:
        failures.append(f"{len(unanswered)} requests unanswered: {Counter(a.error for a in unanswered)}")
    if server_errors:
        failures.append(
            f"{len(server_errors)} answers 5xx other than 503: {Counter(a.status for a in server_errors)}"
        )
    if any(timeouts.values()):
        failures.append(f"functions ran into their timeout: {timeouts}")
    if recorder.gave_up:
        failures.append(
            f"{len(recorder.gave_up)} orders never accepted within {GIVE_UP_SECONDS:.0f} s of retries"
        )
    if recorder.dead_threads:
        failures.append(f"{len(recorder.dead_threads)} load threads ended early: {recorder.dead_threads[:2]}")
    if recorder.rejected:
        failures.append(f"{len(recorder.rejected)} valid orders refused: {recorder.rejected[:2]}")
    if longest < budget and (report.in_dlq or undecodable):
        failures.append(
            f"{report.in_dlq + len(undecodable)} messages in the DLQ though every fault was shorter than the budget"
        )


def _verify_readable(
    runtime: LocalRuntime, recorder: Recorder, accepted: dict[str, int], posted: dict[int, dict[str, Any]]
) -> set[str]:
    """The accepted ids that GET answers 200 with the posted content (polled for a while)."""
    readable: set[str] = set()
    pending = dict(accepted)
    deadline = time.monotonic() + 120
    with (
        api_client(runtime, timeout=CLIENT_TIMEOUT_SECONDS) as http,
        ThreadPoolExecutor(4) as pool,
    ):
        while pending and time.monotonic() < deadline:
            items = list(pending.items())
            statuses = list(
                pool.map(lambda item: read_and_check(http, recorder, item[0], posted[item[1]]), items)
            )
            for (order_id, _number), status in zip(items, statuses, strict=True):
                if status == 200:
                    readable.add(order_id)
                    pending.pop(order_id)
            if pending:
                time.sleep(1)
    return readable - set(recorder.read_mismatches)


def _stored_customers(runtime: LocalRuntime) -> list[tuple[str, str]]:
    """(order_id, customer_id) of every stored row, read with CQL (the customer id names a posted order)."""
    return [(order_id, str(row[1])) for order_id, row in stored_rows(runtime).items()]


def _handler_errors(runtime: LocalRuntime) -> int:
    return runtime.event_source.stats.handler_errors if runtime.event_source is not None else 0


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(ordered):.2f} / {p99:.2f} / {ordered[-1]:.2f}"
