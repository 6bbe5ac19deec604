"""AWS calls that end before a deadline: timeouts sized to what is left, retries while time remains.

botocore fixes timeouts per client and retries with its own backoff (up to seconds), which cannot
respect an invocation's deadline. Here each call gets a client whose connect and read timeouts fit
the time left (clients are built once per process for each of a few timeout steps), botocore
itself never retries, and `call_within` retries transient failures (connection errors, timeouts,
throttling, 5xx) for as long as another attempt fits before the deadline.

A read timeout bounds each wait for data, not the whole answer: a response trickling in below
the timeout can take longer (Toxiproxy's `bandwidth` toxic does that); small AWS answers do not.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from orderpipe_common.deadlines import Deadline
from orderpipe_common.per_process import per_process

# Read timeouts a client can have: a call gets the largest that fits its cap and the time left.
TIMEOUT_STEPS_SECONDS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
# A TCP (and TLS) connect within a region takes milliseconds: a third of the read timeout, at most
# half a second, means the endpoint is gone.
MAX_CONNECT_TIMEOUT_SECONDS = 0.5
# Below this, another attempt would only time out.
MIN_ATTEMPT_SECONDS = 0.25
_THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
     "ProvisionedThroughputExceededException", "RequestLimitExceeded", "TooManyRequestsException",
     "RequestThrottled", "SlowDown", "PriorDeferral", "InternalError", "ServiceUnavailable"}
)  # fmt: skip


def connect_timeout(read_timeout: float) -> float:
    return min(MAX_CONNECT_TIMEOUT_SECONDS, read_timeout / 3)


@per_process
def _client(service: str, read_timeout: float) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        config=Config(
            connect_timeout=connect_timeout(read_timeout),
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1},  # call_within retries, against the deadline
        ),
    )


def read_timeout_within(deadline: Deadline, cap_seconds: float) -> float:
    """The largest read timeout whose attempt (connect + read) fits the cap and the time left."""
    budget = deadline.timeout(cap_seconds) + 0.02  # a budget of 1.0 s computed a moment ago still fits 1.0
    fitting = [step for step in TIMEOUT_STEPS_SECONDS if step + connect_timeout(step) <= budget]
    return fitting[-1] if fitting else TIMEOUT_STEPS_SECONDS[0]


def client_within(service: str, deadline: Deadline, *, cap_seconds: float) -> Any:
    """A client for `service` whose attempts take at most `cap_seconds` and end before `deadline`.

    (Past the deadline it is the client with the shortest timeouts: a last, short attempt.)
    """
    return _client(service, read_timeout_within(deadline, cap_seconds))


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: the network, a timeout, throttling, or the service's own 5xx."""
    if isinstance(error, (ConnectionError, HTTPClientError)):
        return True
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return status >= 500 or error.response.get("Error", {}).get("Code") in _THROTTLING_CODES
    return False


def call_within[T](
    deadline: Deadline,
    call: Callable[[Any], T],
    *,
    client_for: Callable[[Deadline], Any],
    retry: bool = True,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """`call(client_for(deadline))`, again after a transient failure while an attempt fits in the time left.

    Raises the last error (a BotoCoreError or ClientError) when the time is up. `retry=False` for
    calls that must not be repeated blindly (a conditional write whose first attempt may have landed).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return call(client_for(deadline))
        except (BotoCoreError, ClientError) as error:
            pause = random.uniform(0, min(0.2, 0.025 * 2**attempt))  # full jitter, at most 200 ms
            if not retry or not is_transient(error) or deadline.remaining() < pause + MIN_ATTEMPT_SECONDS:
                raise
            (sleep or deadline.sleep)(pause)
