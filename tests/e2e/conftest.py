"""The local runtime, started once for the e2e suite, on the session's Cassandra, with its own moto
(DynamoDB) and ElasticMQ (SQS, as `orderpipe run` has it: it refuses what SQS refuses).

How a test authenticates is said here once: `for_producer` (httpx clients), `auth_headers_for`
(fixed headers, for tools such as schemathesis) and `submit_credentials_for` (the import command)
all give the same producer's credentials."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from orderpipe_common.tuning import DEFAULT_TUNING
from orderpipe_devenv.aws.endpoints import local_aws
from orderpipe_devenv.processes import free_port
from orderpipe_devenv.runtime.pipeline import LocalProducer, LocalRuntime, RuntimeConfig
from orderpipe_testkit.auth import ClientCredentialsAuth, for_producer
from tests.fixtures.cassandra import in_ci

# Short timings so redelivery and the DLQ are observable in seconds: a 2 s writer (visibility 12 s),
# 2 receives, the age alarm at 5 s; authorizer decisions cached for 2 s, so a revocation shows
# within the test. Writer batches of 10 finish well within the writer's timeout on a busy machine, so
# thousands of valid orders (the bulk import test) are written, not sent to the DLQ by a slow batch.
E2E_TUNING = DEFAULT_TUNING.with_overrides(
    {
        "writer_timeout_seconds": 2,
        "alarm_oldest_message_age_seconds": 5,
        "max_receive_count": 2,
        "writer_batching_window_seconds": 1,
        "writer_batch_size": 10,
        "authorizer_cache_ttl_seconds": 2,
    }
)


@pytest.fixture(scope="session")
def local_runtime(cassandra_endpoint: Any) -> Iterator[LocalRuntime]:
    with local_aws("elasticmq") as aws:
        if aws.sqs_backend != "elasticmq" and in_ci():
            pytest.fail("ElasticMQ is required under CI (SQS's character and size rules)", pytrace=False)
        config = RuntimeConfig(port=free_port(), keyspace="orderpipe_e2e", tuning=E2E_TUNING)
        with LocalRuntime(
            config,
            cassandra_env=cassandra_endpoint.settings_env("orderpipe_e2e"),
            aws_endpoint_url=aws.endpoint_url,
            sqs_endpoint_url=aws.sqs_endpoint_url,
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


def auth_headers_for(producer: LocalProducer) -> dict[str, str]:
    """Headers that authenticate as `producer` for the token's lifetime (jwt mode: a bearer token)."""
    authenticator = for_producer(producer)
    if not isinstance(authenticator, ClientCredentialsAuth):
        raise ValueError("fixed headers need a token (jwt mode): SigV4 signs each request")
    return {"Authorization": f"Bearer {authenticator.token()}"}


def submit_credentials_for(producer: LocalProducer) -> tuple[list[str], dict[str, str]]:
    """`orderpipe submit` arguments and environment that authenticate as `producer` (jwt mode)."""
    if producer.auth != "jwt" or not (producer.token_url and producer.client_id and producer.client_secret):
        raise ValueError("the import test authenticates with client credentials (jwt mode)")
    arguments = ["--token-url", producer.token_url, "--client-id", producer.client_id]
    for scope in producer.scopes:
        arguments += ["--scope", scope]
    return arguments, {"ORDERPIPE_CLIENT_SECRET": producer.client_secret}


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
