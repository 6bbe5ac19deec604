"""Open-loop (target rate) or closed-loop (concurrency) load over keep-alive HTTP connections.

Each worker thread owns one `http.client` connection (keep-alive, reconnects after an error): the
standard library client costs a fraction of the CPU per request of higher-level clients, which
matters on a 2-core machine where the generator shares the CPU with the system under test.

With a target rate, request i is due at start + i / (rate / batch_size): a worker takes the next
ticket, waits until it is due, sends it. When every worker is busy the requests start late; how
late is reported (`schedule_lag`), so a generator that cannot keep up does not go unnoticed.
A sample of accepted orders is polled with GET until readable: visibility latency is measured
from the moment the POST was sent to the first 200.

Bounded: it stops after `count` orders or `duration_s` seconds (whichever is given; a hard cap on
both otherwise), then waits at most `visibility_timeout_s` for the sampled orders.
"""

from __future__ import annotations

import heapq
import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from orderpipe_testkit.auth import RequestAuthenticator
from orderpipe_testkit.loadgen.orders import BodyPool
from orderpipe_testkit.loadgen.stats import (
    LoadReport,
    Recorder,
    RequestOutcome,
    Snapshot,
    VisibilityOutcome,
)

MAX_DURATION_S = 3600.0
MAX_ORDERS = 10_000_000
MAX_BATCH = 100  # what POST /orders/batch takes


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    base_url: str
    # How each request authenticates: `auth` (orderpipe_testkit.auth: a client-credentials token or
    # SigV4) and/or `api_key` (sent as x-api-key: the usage-plan key in iam mode). Never reported.
    auth: RequestAuthenticator | None = None
    api_key: str | None = None
    rate: float | None = None  # target orders per second; None: as fast as `concurrency` allows
    concurrency: int = 8
    duration_s: float | None = None
    count: int | None = None  # orders to send (rounded up to whole requests)
    batch_size: int = 1  # 1: POST /orders; more: POST /orders/batch with this many orders
    profile: str = "mixed"
    visibility_every_s: float = 0.25  # sample one accepted order this often; 0 turns sampling off
    visibility_poll_interval_s: float = 0.05
    visibility_timeout_s: float = 30.0
    visibility_pollers: int = 2
    request_timeout_s: float = 30.0

    def validate(self) -> None:
        url = urlsplit(self.base_url)
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port][/stage], got {self.base_url!r}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be 1..{MAX_BATCH}")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")
        if not 1 <= self.concurrency <= 512:
            raise ValueError("concurrency must be 1..512")
        if self.duration_s is None and self.count is None:
            raise ValueError("give a duration or a count: the generator always stops by itself")
        if self.duration_s is not None and not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S:.0f}] seconds")
        if self.count is not None and not 1 <= self.count <= MAX_ORDERS:
            raise ValueError(f"count must be 1..{MAX_ORDERS}")

    @property
    def requests_limit(self) -> int | None:
        return None if self.count is None else -(-self.count // self.batch_size)


class _Http:
    """One keep-alive connection to the base URL's host (and only there)."""

    def __init__(
        self, base_url: str, timeout_s: float, *, auth: RequestAuthenticator | None, api_key: str | None
    ) -> None:
        url = urlsplit(base_url)
        self._https = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port
        self.prefix = url.path.rstrip("/")
        self._timeout = timeout_s
        self._base_url = base_url.rstrip("/")
        self._auth = auth
        self._headers = {"content-type": "application/json", **({"x-api-key": api_key} if api_key else {})}
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = cls(self._host, self._port, timeout=self._timeout)
        return self._connection

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        connection = self._connect()
        try:
            headers = dict(self._headers)
            if self._auth is not None:
                headers.update(self._auth.headers(method, self._base_url + path, body, headers))
            connection.request(method, self.prefix + path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except BaseException:
            self.close()  # the connection's state is unknown: never reuse it
            raise
        if response.will_close:
            self.close()
        return response.status, payload

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def accepted_ids(status: int, payload: bytes, batch: bool) -> list[str]:
    """The order ids a POST answer says were accepted."""
    if status != 202:
        return []
    try:
        body = json.loads(payload)
    except ValueError:
        return []
    if not batch:
        return [body["order_id"]] if isinstance(body, dict) and "order_id" in body else []
    results = body.get("results", []) if isinstance(body, dict) else []
    return [r["order_id"] for r in results if r.get("status") == "accepted" and r.get("order_id")]


class _Visibility:
    """Polls sampled order ids with GET until they answer 200 or time out."""

    def __init__(self, config: LoadConfig, recorder: Recorder, started: float) -> None:
        self._config = config
        self._recorder = recorder
        self._started = started
        self._heap: list[tuple[float, int, str, float, int]] = []  # due, seq, id, posted_at, polls
        self._seq = 0
        self._condition = threading.Condition()
        self._closing = False
        self._threads = [
            threading.Thread(target=self._poll, name=f"loadgen-visibility-{n}", daemon=True)
            for n in range(config.visibility_pollers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        with self._condition:
            return len(self._heap)

    def add(self, order_id: str, posted_at: float) -> None:
        with self._condition:
            self._seq += 1
            heapq.heappush(self._heap, (time.monotonic(), self._seq, order_id, posted_at, 0))
            self._condition.notify()

    def finish(self, deadline: float) -> None:
        """Let the pollers finish what they have, until `deadline` (monotonic) at the latest."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + self._config.request_timeout_s)

    def _poll(self) -> None:
        config = self._config
        client = _Http(config.base_url, config.request_timeout_s, auth=config.auth, api_key=config.api_key)
        try:
            while True:
                with self._condition:
                    while not self._heap and not self._closing:
                        self._condition.wait()
                    if not self._heap:
                        return
                    due = self._heap[0][0]
                    now = time.monotonic()
                    if due > now:
                        self._condition.wait(due - now)
                        continue
                    _, _, order_id, posted_at, polls = heapq.heappop(self._heap)
                try:
                    status, _ = client.request("GET", f"/orders/{order_id}")
                except (OSError, http.client.HTTPException):
                    status = 0
                now = time.monotonic()
                polls += 1
                if status == 200:
                    self._recorder.record_visibility(
                        VisibilityOutcome(posted_at - self._started, now - posted_at, polls)
                    )
                elif now - posted_at >= config.visibility_timeout_s:
                    self._recorder.record_visibility(
                        VisibilityOutcome(posted_at - self._started, None, polls)
                    )
                else:
                    with self._condition:
                        self._seq += 1
                        entry = (
                            now + config.visibility_poll_interval_s,
                            self._seq,
                            order_id,
                            posted_at,
                            polls,
                        )
                        heapq.heappush(self._heap, entry)
        finally:
            client.close()


def run_load(
    config: LoadConfig,
    *,
    progress: Callable[[Snapshot], None] | None = None,
    progress_every_s: float = 0.25,
) -> LoadReport:
    config.validate()
    pool = BodyPool(profile=config.profile, batch_size=config.batch_size)
    batch = config.batch_size > 1
    path = "/orders/batch" if batch else "/orders"
    duration = config.duration_s if config.duration_s is not None else MAX_DURATION_S
    limit = config.requests_limit
    interval = None if config.rate is None else config.batch_size / config.rate

    recorder = Recorder()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    end = started + duration
    stop = threading.Event()
    tickets = {"next": 0}
    ticket_lock = threading.Lock()
    lag: list[float] = []  # how late each scheduled request started
    sampling = {"next_at": started}
    sample_lock = threading.Lock()
    visibility = _Visibility(config, recorder, started) if config.visibility_every_s > 0 else None
    stop_reason = {"why": "duration" if config.duration_s is not None else "count"}

    def take_ticket() -> int | None:
        with ticket_lock:
            ticket = tickets["next"]
            if stop.is_set() or (limit is not None and ticket >= limit):
                return None
            tickets["next"] = ticket + 1
            return ticket

    def maybe_sample(ids: list[str], posted_at: float) -> None:
        if visibility is None or not ids:
            return
        with sample_lock:
            if posted_at < sampling["next_at"]:
                return
            sampling["next_at"] = posted_at + config.visibility_every_s
        visibility.add(ids[0], posted_at)

    def worker() -> None:
        client = _Http(config.base_url, config.request_timeout_s, auth=config.auth, api_key=config.api_key)
        try:
            while True:
                ticket = take_ticket()
                if ticket is None:
                    return
                if interval is not None:
                    due = started + ticket * interval
                    wait = due - time.monotonic()
                    if wait > 0:
                        if stop.wait(wait):
                            return
                    else:
                        lag.append(-wait)
                if time.monotonic() >= end:
                    return
                body = pool.body(ticket)
                recorder.sent(config.batch_size)
                sent_at = time.monotonic()
                try:
                    status, payload = client.request("POST", path, body)
                    label = str(status)
                except (OSError, http.client.HTTPException) as error:
                    status, payload, label = 0, b"", f"error:{type(error).__name__}"
                answered = time.monotonic()
                ids = accepted_ids(status, payload, batch)
                recorder.record(
                    RequestOutcome(
                        started_s=sent_at - started,
                        latency_s=answered - sent_at,
                        status=label,
                        orders_sent=config.batch_size,
                        orders_accepted=len(ids),
                    )
                )
                maybe_sample(ids, sent_at)
        finally:
            client.close()

    threads = [
        threading.Thread(target=worker, name=f"loadgen-{n}", daemon=True) for n in range(config.concurrency)
    ]
    if visibility is not None:
        visibility.start()
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            time.sleep(progress_every_s)
            if progress is not None:
                progress(_snapshot(recorder, started, visibility, sending_ended=None))
            if time.monotonic() >= end + config.request_timeout_s:
                break  # workers are stuck past their own timeouts: give up on them
    except KeyboardInterrupt:
        stop_reason["why"] = "interrupted"
        stop.set()
        for thread in threads:
            thread.join(timeout=config.request_timeout_s)
    stop.set()
    generation_end = time.monotonic()
    if visibility is not None:
        deadline = generation_end + config.visibility_timeout_s
        finisher = threading.Thread(target=visibility.finish, args=(deadline,), daemon=True)
        finisher.start()
        while finisher.is_alive():
            finisher.join(timeout=progress_every_s)
            if progress is not None:
                progress(_snapshot(recorder, started, visibility, sending_ended=generation_end))
    outcomes = sorted(recorder.outcomes, key=lambda o: o.started_s)
    last_answer = max((o.started_s + o.latency_s for o in outcomes), default=0.0)
    # Credentials never reach a report (and an authenticator holds a lock asdict cannot copy).
    config_dict: dict[str, Any] = {
        f.name: getattr(config, f.name) for f in fields(config) if f.name not in {"api_key", "auth"}
    }
    config_dict["mean_body_bytes"] = round(pool.mean_bytes)
    config_dict["schedule_lag"] = {
        "late_requests": len(lag),
        "max_ms": round(max(lag, default=0.0) * 1000, 2),
    }
    return LoadReport(
        config=config_dict,
        started_at=started_at,
        duration_s=last_answer,
        outcomes=outcomes,
        visibility=sorted(recorder.visibility, key=lambda v: v.posted_s),
        stop_reason=stop_reason["why"],
    )


# The live rate is over this many recent seconds: long enough to be steady, short enough to follow.
RATE_WINDOW_S = 5.0


def _snapshot(
    recorder: Recorder, started: float, visibility: _Visibility | None, *, sending_ended: float | None
) -> Snapshot:
    """While sending: the rate of the last RATE_WINDOW_S. Once sending ended: the whole run's rate
    (a window sliding past the end would decay towards zero and mislead whoever watches it)."""
    now = time.monotonic()
    elapsed = now - started
    if sending_ended is None:
        window = min(RATE_WINDOW_S, elapsed)
        rate = recorder.accepted_since(elapsed - window) / window if window > 0 else 0.0
    else:
        sent_for = sending_ended - started
        rate = recorder.orders_accepted / sent_for if sent_for > 0 else 0.0
    return Snapshot(
        elapsed_s=elapsed,
        requests_sent=recorder.requests_sent,
        orders_sent=recorder.orders_sent,
        orders_accepted=recorder.orders_accepted,
        errors=recorder.errors,
        current_orders_per_s=rate,
        visibility_pending=visibility.pending if visibility is not None else 0,
        sending=sending_ended is None,
    )
