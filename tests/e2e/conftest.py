"""The local runtime, started once for the e2e suite, on the session's Cassandra and its own moto."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from orderpipe_common.tuning import DEFAULT_TUNING
from orderpipe_devenv.aws.moto_server import MotoServerProcess
from orderpipe_devenv.processes import free_port
from orderpipe_devenv.runtime.pipeline import LocalProducer, LocalRuntime, RuntimeConfig
from orderpipe_testkit.auth import for_producer

# Short timings so redelivery and the DLQ are observable in seconds: a 2 s writer (visibility 12 s),
# 2 receives, the age alarm at 5 s;
# authorizer decisions cached for 2 s, so a revocation shows within the test.
E2E_TUNING = DEFAULT_TUNING.with_overrides(
    {
        "writer_timeout_seconds": 2,
        "alarm_oldest_message_age_seconds": 5,
        "max_receive_count": 2,
        "writer_batching_window_seconds": 1,
        "authorizer_cache_ttl_seconds": 2,
    }
)


@pytest.fixture(scope="session")
def local_runtime(cassandra_endpoint: Any) -> Iterator[LocalRuntime]:
    with MotoServerProcess() as moto:
        config = RuntimeConfig(port=free_port(), keyspace="orderpipe_e2e", tuning=E2E_TUNING)
        with LocalRuntime(
            config,
            cassandra_env=cassandra_endpoint.settings_env("orderpipe_e2e"),
            aws_endpoint_url=moto.endpoint_url,
        ) as runtime:
            yield runtime


@pytest.fixture(scope="session")
def producer(local_runtime: LocalRuntime) -> LocalProducer:
    """The producer most tests post as (orders/write, orders/read)."""
    return local_runtime.add_producer("e2e-producer")


@pytest.fixture
def api(local_runtime: LocalRuntime, producer: LocalProducer) -> Iterator[httpx.Client]:
    """An HTTP client authenticated as `producer` (a client-credentials token from the local issuer)."""
    with httpx.Client(base_url=local_runtime.url, auth=for_producer(producer), timeout=10) as client:
        yield client


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
