"""Time budgets from the invocation: every wait a function makes ends before its answer is due.

A Lambda function has a hard timeout, and past it the caller gets no answer of ours: the API
answers 5XX, the event source retries the whole batch. So each invocation takes one `Deadline`
from `context.get_remaining_time_in_millis()` (capped by the function's answer budget, minus a
reserve for answering), and every connect timeout, request timeout and retry below it is derived
from what is left of it. A dependency that accepts connections and never answers then costs at
most the budget, and the function answers with its own words (503 + Retry-After, or the records in
`batchItemFailures`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class InvocationContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Deadline:
    """A point in time (monotonic clock) by which a piece of work must be done."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + max(0.0, seconds))

    @classmethod
    def of_invocation(
        cls,
        context: InvocationContext | None,
        *,
        reserve_seconds: float,
        budget_seconds: float | None = None,
    ) -> Deadline:
        """The function's timeout minus `reserve_seconds`, and at most `budget_seconds` from now.

        Without a context (a tool calling the logic directly) only the budget bounds it.
        """
        seconds = budget_seconds if budget_seconds is not None else float("inf")
        if context is not None:
            seconds = min(seconds, context.get_remaining_time_in_millis() / 1000 - reserve_seconds)
        if seconds == float("inf"):
            raise ValueError("a deadline needs a context or a budget")
        return cls.after(seconds)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def timeout(self, cap_seconds: float) -> float:
        """A timeout for one call: `cap_seconds`, or less when the deadline is nearer."""
        return min(cap_seconds, self.remaining())

    def within(self, seconds: float) -> Deadline:
        """The earlier of this deadline and `seconds` from now (a step's share of the budget)."""
        return Deadline(min(self.expires_at, time.monotonic() + max(0.0, seconds)))

    def earlier_by(self, seconds: float) -> Deadline:
        """This deadline moved `seconds` earlier (keeps time for a step that must follow)."""
        return Deadline(self.expires_at - seconds)

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, but never past the deadline."""
        time.sleep(min(seconds, self.remaining()))

    def as_context(self) -> InvocationContext:
        """A Lambda-context look-alike whose remaining time ends at this deadline.

        For libraries that size a lease by the remaining time (Powertools' idempotency: a request
        that fails without cleaning up holds its key no longer than this deadline).
        """
        return _DeadlineContext(self)


@dataclass(frozen=True)
class _DeadlineContext:
    deadline: Deadline

    def get_remaining_time_in_millis(self) -> int:
        return int(self.deadline.remaining() * 1000)


def batch_reserve_seconds(remaining_seconds: float) -> float:
    """Time a batch function keeps back from its timeout to report what it did not finish.

    A tenth of the time left, between 0.25 s and 3 s: a 30 s writer reports at least 3 s early.
    """
    return min(3.0, max(0.25, remaining_seconds / 10))
