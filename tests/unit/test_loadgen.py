"""The load generator's accounting, against a tiny scripted HTTP server on loopback (not timed)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orderpipe_testkit.loadgen import LoadConfig, generator, percentile, run_load
from orderpipe_testkit.loadgen.generator import accepted_ids
from orderpipe_testkit.loadgen.stats import Recorder, RequestOutcome, summarize_ms


class ScriptedApi:
    """Answers POSTs by a repeating status script; GET of an id answers 404 until polled `ready_after` times."""

    def __init__(self, statuses: list[int], *, ready_after: int = 2) -> None:
        self.statuses = statuses
        self.ready_after = ready_after
        self.posts = 0
        self.orders_posted = 0
        self.gets: dict[str, int] = {}
        self.api_keys: set[str] = set()
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: Any) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:
                    status = api.statuses[api.posts % len(api.statuses)]
                    api.posts += 1
                    api.orders_posted += len(body) if isinstance(body, list) else 1
                    api.api_keys.add(self.headers.get("x-api-key", ""))
                if status != 202:
                    self._answer(status, {"error": "scripted"})
                elif self.path.endswith("/orders/batch"):
                    results = [
                        {"index": i, "status": "accepted", "order_id": str(uuid.uuid4())}
                        if i % 2 == 0
                        else {"index": i, "status": "rejected"}
                        for i in range(len(body))
                    ]
                    self._answer(202, {"results": results})
                else:
                    self._answer(202, {"order_id": str(uuid.uuid4()), "status": "accepted"})

            def do_GET(self) -> None:
                order_id = self.path.rsplit("/", 1)[-1]
                with api.lock:
                    api.gets[order_id] = api.gets.get(order_id, 0) + 1
                    polls = api.gets[order_id]
                self._answer(200 if polls > api.ready_after else 404, {})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(api: ScriptedApi) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([3.0, 1.0, 2.0], 50) == 2
    assert percentile([7.0], 99) == 7
    assert percentile([], 50) is None
    summary = summarize_ms([0.001, 0.002, 0.003, 0.004])
    assert summary == {"count": 4, "p50_ms": 2.0, "p90_ms": 4.0, "p99_ms": 4.0, "max_ms": 4.0, "mean_ms": 2.5}


def test_counts_by_status_add_up_for_single_posts(serve: Any) -> None:
    api = ScriptedApi([202, 202, 503, 202, 429])  # 3 of every 5 accepted
    url = serve(api)
    report = run_load(
        LoadConfig(base_url=url, api_key="secret", concurrency=3, count=50, visibility_every_s=0)
    ).as_dict()
    assert api.posts == 50
    assert report["requests"] == 50
    assert report["status_counts"] == {"202": 30, "429": 10, "503": 10}
    assert report["errors_by_status"] == {"429": 10, "503": 10}
    assert report["requests_ok"] == 30
    assert report["orders_sent"] == 50
    assert report["orders_accepted"] == 30
    assert report["accept_latency"]["count"] == 30
    assert report["all_responses_latency"]["count"] == 50
    latency = report["accept_latency"]
    assert 0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert sum(row["requests"] for row in report["per_second"]) == 50
    assert api.api_keys == {"secret"}
    assert "api_key" not in report["config"]


def test_batch_posts_count_orders_from_the_per_index_results(serve: Any) -> None:
    api = ScriptedApi([202])
    url = serve(api)
    report = run_load(
        LoadConfig(base_url=url, api_key="k", concurrency=2, count=45, batch_size=10, visibility_every_s=0)
    ).as_dict()
    assert api.posts == 5  # 45 orders in batches of 10: rounded up to whole requests
    assert report["orders_sent"] == api.orders_posted == 50
    assert report["orders_accepted"] == 25  # the scripted API accepts every other index


def test_visibility_is_measured_on_polled_samples(serve: Any) -> None:
    api = ScriptedApi([202], ready_after=2)
    url = serve(api)
    report = run_load(
        LoadConfig(
            base_url=url,
            api_key="k",
            concurrency=1,
            count=5,
            visibility_every_s=1e-9,  # sample every accepted order
            visibility_poll_interval_s=0.001,
        )
    ).as_dict()
    visibility = report["visibility"]
    assert visibility["sampled"] == visibility["visible"] == 5
    assert visibility["polls"] == 15  # two 404s, then the 200, for each
    assert visibility["latency"]["count"] == 5


def test_errors_without_a_response_are_counted_by_exception(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = run_load(
        LoadConfig(
            base_url=f"http://127.0.0.1:{port}", api_key="k", concurrency=1, count=3, visibility_every_s=0
        )
    ).as_dict()
    assert report["status_counts"] == {"error:ConnectionRefusedError": 3}
    assert report["orders_accepted"] == 0


def test_accepted_ids_reads_single_and_batch_answers() -> None:
    assert accepted_ids(202, b'{"order_id": "a", "status": "accepted"}', batch=False) == ["a"]
    batch = json.dumps({"results": [{"status": "accepted", "order_id": "x"}, {"status": "failed"}]}).encode()
    assert accepted_ids(202, batch, batch=True) == ["x"]
    assert accepted_ids(503, b"{}", batch=False) == []
    assert accepted_ids(202, b"not json", batch=False) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"base_url": "ftp://example"},
        {"batch_size": 101},
        {"count": None, "duration_s": None},
        {"duration_s": 0},
        {"rate": -1},
    ],
)
def test_invalid_configs_are_refused(changes: dict[str, Any]) -> None:
    config = {"base_url": "http://127.0.0.1:1", "api_key": "k", "count": 1, **changes}
    with pytest.raises(ValueError):  # noqa: PT011
        LoadConfig(**config).validate()


def test_the_live_rate_after_sending_is_the_whole_runs_not_a_decaying_window(serve: Any) -> None:
    # Given a run whose sampled orders take a while to become readable (so progress goes on after sending)
    api = ScriptedApi([202], ready_after=15)
    url = serve(api)
    snapshots: list[Any] = []
    # When it runs, reporting progress often
    report = run_load(
        LoadConfig(
            base_url=url,
            api_key="k",
            rate=40,
            concurrency=2,
            duration_s=1.5,
            visibility_every_s=0.5,
            visibility_poll_interval_s=0.05,
        ),
        progress=snapshots.append,
        progress_every_s=0.05,
    ).as_dict()
    # Then while sending the line shows a recent rate, and once sending ended it shows the whole run's rate,
    # which does not fall as the visibility polls go on
    after = [s for s in snapshots if not s.sending]
    assert any(s.sending for s in snapshots) and after, "progress was reported both while and after sending"
    whole_run = report["orders_accepted"] / report["config"]["duration_s"]
    assert {round(s.current_orders_per_s, 6) for s in after} == {round(after[0].current_orders_per_s, 6)}
    assert after[-1].current_orders_per_s == pytest.approx(whole_run, rel=0.35)


class _FakeClock:
    """Stands in for the generator's `time` module: `monotonic()` answers what the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_the_live_rate_follows_the_recent_window_and_the_final_line_the_whole_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a run accepting 100 orders/s for 20 s, then 20 orders/s for the next 10 s
    fast = [RequestOutcome(i * 0.1, 0.0, "202", 10, 10) for i in range(200)]
    slow = [RequestOutcome(20 + i * 0.5, 0.0, "202", 10, 10) for i in range(20)]
    pending = fast + slow
    recorder = Recorder()
    started = 1000.0
    clock = _FakeClock(started)
    monkeypatch.setattr(generator, "time", clock)
    assert generator.RATE_WINDOW_S == 5.0  # the windows below are drawn for 5 s

    def live_at(elapsed: float, sending_ended: float | None = None) -> float:
        clock.now = started + elapsed
        while pending and pending[0].started_s < elapsed:  # what has been answered by now
            outcome = pending.pop(0)
            recorder.sent(outcome.orders_sent)
            recorder.record(outcome)
        return generator._snapshot(recorder, started, None, sending_ended=sending_ended).current_orders_per_s

    # When the live line is drawn while sending, Then it shows the last 5 s only:
    # all fast at 20 s, 3 s fast + 2 s slow at 22 s, all slow at 30 s (not the run's 73/s)
    assert live_at(20.0) == pytest.approx(100, rel=0.05)
    assert live_at(22.0) == pytest.approx((300 + 40) / 5, rel=0.05)
    assert live_at(30.0) == pytest.approx(20, rel=0.05)
    # When sending ended at 30 s and the line is drawn later (visibility polls go on), Then it shows
    # the whole run's rate, the same however long after the end
    whole_run = (2000 + 200) / 30
    assert live_at(35.0, sending_ended=started + 30) == pytest.approx(whole_run)
    assert live_at(60.0, sending_ended=started + 30) == pytest.approx(whole_run)
