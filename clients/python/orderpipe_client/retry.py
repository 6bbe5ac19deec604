"""How long to wait before sending a request again.

Exponential back-off with full jitter (a uniformly random wait between 0 and the exponential bound),
so that many producers failing together do not come back together. When the server says how long
to wait (`Retry-After`), that is the least we wait, plus a little jitter. Attempts and the total
time are both bounded: a call gives up rather than wait past its deadline.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from orderpipe_client.errors import OperationCancelledError

# Answers that say "not now": retrying the same request (same key, same body) later is safe.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Answers that say "never like this": the request itself is refused; they are not retried.
REFUSAL_STATUSES = frozenset({400, 413, 415, 422})
# A 409 with this error code is a refusal too: the Idempotency-Key was used before with another body
# (other 409s say the first request with the key still runs: retry).
KEY_REUSED_CODE = "idempotency_key_reused"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of one call's retries.

    `max_attempts` counts requests (the first one included); `deadline` bounds the whole call in
    seconds, waits included. Without `Retry-After`, the wait before attempt n+1 is uniform in
    [0, min(max_delay, base_delay * 2**(n-1))]. With it, the wait is Retry-After plus uniform
    [0, base_delay]; a Retry-After beyond the deadline ends the call at once.
    """

    max_attempts: int = 8
    base_delay: float = 0.25
    max_delay: float = 20.0
    deadline: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.deadline <= 0:
            raise ValueError("delays must be >= 0 and the deadline > 0")

    def backoff_bound(self, attempt: int) -> float:
        """The largest wait after failed attempt number `attempt` (1-based), without Retry-After."""
        return min(self.max_delay, self.base_delay * 2 ** (max(attempt, 1) - 1))

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        uniform = (rng or random).uniform
        if retry_after is not None:
            return retry_after + uniform(0.0, self.base_delay)
        return uniform(0.0, self.backoff_bound(attempt))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delay-seconds or an HTTP-date); None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def sleep_unless_cancelled(seconds: float, cancel: threading.Event | None) -> None:
    """Sleep; with a cancel event, wake as soon as it is set and raise OperationCancelledError."""
    if seconds <= 0:
        return
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise OperationCancelledError("cancelled while waiting")
