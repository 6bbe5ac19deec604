"""The client's back-off: full jitter within exponential bounds, Retry-After as the least wait."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from orderpipe_client.bulk import RateLimiter
from orderpipe_client.retry import RetryPolicy, parse_retry_after


def test_backoff_bounds_double_per_attempt_up_to_the_cap() -> None:
    # Given a policy starting at 0.25 s and capped at 5 s
    policy = RetryPolicy(base_delay=0.25, max_delay=5.0)
    # Then the bound after attempts 1, 2, 3 ... is 0.25, 0.5, 1, 2, 4, 5, 5
    assert [policy.backoff_bound(n) for n in range(1, 8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_waits_without_retry_after_are_spread_over_the_whole_bound() -> None:
    # Given a policy and a seeded random source
    policy, rng = RetryPolicy(base_delay=0.25, max_delay=5.0), random.Random(1)
    for attempt in (1, 3, 6):
        bound = policy.backoff_bound(attempt)
        # When it draws many waits after that attempt
        waits = [policy.delay(attempt, None, rng) for _ in range(2_000)]
        # Then each lies in [0, bound], and they cover it (full jitter, not a fixed delay plus noise)
        assert all(0.0 <= wait <= bound for wait in waits)
        assert min(waits) < bound * 0.05 and max(waits) > bound * 0.95


def test_retry_after_is_the_least_wait_plus_a_little_jitter() -> None:
    policy, rng = RetryPolicy(base_delay=0.25, max_delay=5.0), random.Random(2)
    waits = [policy.delay(attempt, 3.0, rng) for attempt in range(1, 9) for _ in range(100)]
    assert all(3.0 <= wait <= 3.25 for wait in waits)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), (" 0 ", 0.0), ("120", 120.0), ("soon", None), ("-3", None), ("", None), (None, None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("changes", [{"max_attempts": 0}, {"deadline": 0}, {"base_delay": -1}])
def test_policies_that_cannot_work_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        RetryPolicy(**changes)  # type: ignore[arg-type]


def test_the_rate_limiter_spaces_requests_by_their_order_count() -> None:
    # Given 100 orders/s and a clock that stands still
    now = [1000.0]
    limiter = RateLimiter(100.0, clock=lambda: now[0])
    # When three batches of 50 reserve at once
    waits = [limiter.reserve(50) for _ in range(3)]
    # Then they go at 0, 0.5 and 1 s; and after a pause long enough, the next goes at once
    assert waits == [0.0, 0.5, 1.0]
    now[0] += 10
    assert limiter.reserve(50) == 0.0
