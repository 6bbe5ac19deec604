"""The local runtime's default producer: made once, however many threads ask for it at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from orderpipe_devenv.runtime.pipeline import DEFAULT_PRODUCER, LocalRuntime, RuntimeConfig
from orderpipe_ops.queues import OperatorError


def test_the_default_producer_is_made_once_when_many_threads_ask_at_once(monkeypatch: pytest.MonkeyPatch):
    # Given a runtime whose producer creation takes a while and, like `orderpipe producers add`,
    # refuses a second active producer of the same name
    runtime = LocalRuntime(RuntimeConfig(), cassandra_env={}, aws_endpoint_url="http://127.0.0.1:9")
    calls: list[str] = []
    lock = threading.Lock()
    made = object()

    def add_producer(name: str, **_options: object) -> object:
        with lock:
            calls.append(name)
            second = len(calls) > 1
        time.sleep(0.2)
        if second:
            raise OperatorError(f"producer {name!r} exists and is active")
        return made

    monkeypatch.setattr(runtime, "add_producer", add_producer)
    # When eight load threads ask for the default producer at the same moment
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: runtime.default_producer(), range(8)))
    # Then it was made once and every thread got it (none died on the refusal)
    assert calls == [DEFAULT_PRODUCER]
    assert all(answer is made for answer in answers)
