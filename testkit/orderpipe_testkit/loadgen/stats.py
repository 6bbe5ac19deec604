"""Accounting of a load run: every request's outcome, percentiles, per-second series, the report."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of unsorted `values`; None when there are none.

    Nearest rank: the smallest value with at least p% of the values at or below it, so every
    percentile is a value that was actually measured (p100 is the maximum).
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50/p90/p99, max and mean of durations given in seconds, in milliseconds."""
    ordered = sorted(seconds)
    summary: dict[str, float | int | None] = {"count": len(ordered)}
    for p in PERCENTILES:
        value = percentile(ordered, p)
        summary[f"p{p}_ms"] = None if value is None else round(value * 1000, 2)
    summary["max_ms"] = round(ordered[-1] * 1000, 2) if ordered else None
    summary["mean_ms"] = round(sum(ordered) / len(ordered) * 1000, 2) if ordered else None
    return summary


@dataclass(frozen=True)
class RequestOutcome:
    started_s: float  # seconds since the run started
    latency_s: float
    status: str  # the HTTP status as text ("202"), or "error:<ExceptionName>" when none came back
    orders_sent: int
    orders_accepted: int


@dataclass(frozen=True)
class VisibilityOutcome:
    posted_s: float  # when the POST that carried the order was sent (since the run started)
    latency_s: float | None  # POST sent -> first GET 200; None when it never became visible
    polls: int


@dataclass
class Snapshot:
    """What the progress display shows."""

    elapsed_s: float
    requests_sent: int
    orders_sent: int
    orders_accepted: int
    errors: int
    current_orders_per_s: float  # over the last RATE_WINDOW_S while sending, the whole run's afterwards
    visibility_pending: int
    sending: bool = True


@dataclass
class Recorder:
    """Thread-safe sink for outcomes; cheap enough to call from every worker on every request."""

    outcomes: list[RequestOutcome] = field(default_factory=list)
    visibility: list[VisibilityOutcome] = field(default_factory=list)
    requests_sent: int = 0
    orders_sent: int = 0
    orders_accepted: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self, orders: int) -> None:
        with self._lock:
            self.requests_sent += 1
            self.orders_sent += orders

    def record(self, outcome: RequestOutcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            self.orders_accepted += outcome.orders_accepted
            if not outcome.status.startswith("2"):
                self.errors += 1

    def record_visibility(self, outcome: VisibilityOutcome) -> None:
        with self._lock:
            self.visibility.append(outcome)

    def accepted_since(self, since_s: float) -> int:
        with self._lock:
            recent = 0
            for outcome in reversed(self.outcomes):
                if outcome.started_s + outcome.latency_s < since_s:
                    break
                recent += outcome.orders_accepted
            return recent


@dataclass
class LoadReport:
    config: dict[str, Any]
    started_at: str
    duration_s: float  # from the first request sent to the last answer received
    outcomes: list[RequestOutcome]
    visibility: list[VisibilityOutcome]
    stop_reason: str

    def status_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(o.status for o in self.outcomes).items()))

    def errors_by_status(self) -> dict[str, int]:
        return {status: n for status, n in self.status_counts().items() if not status.startswith("2")}

    def per_second(self) -> list[dict[str, Any]]:
        """One row per whole second of the run, by when each request's answer came back."""
        if not self.outcomes:
            return []
        seconds = math.ceil(max(o.started_s + o.latency_s for o in self.outcomes)) or 1
        buckets: list[list[RequestOutcome]] = [[] for _ in range(seconds)]
        for outcome in self.outcomes:
            buckets[min(seconds - 1, int(outcome.started_s + outcome.latency_s))].append(outcome)
        rows = []
        for second, bucket in enumerate(buckets):
            latencies = [o.latency_s for o in bucket]
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
            rows.append(
                {
                    "second": second,
                    "requests": len(bucket),
                    "orders_accepted": sum(o.orders_accepted for o in bucket),
                    "errors": sum(not o.status.startswith("2") for o in bucket),
                    "accept_p50_ms": None if p50 is None else round(p50 * 1000, 2),
                    "accept_p99_ms": None if p99 is None else round(p99 * 1000, 2),
                }
            )
        return rows

    def as_dict(self) -> dict[str, Any]:
        ok = [o for o in self.outcomes if o.status.startswith("2")]
        duration = self.duration_s or float("nan")
        orders_sent = sum(o.orders_sent for o in self.outcomes)
        orders_accepted = sum(o.orders_accepted for o in self.outcomes)
        visible = [v.latency_s for v in self.visibility if v.latency_s is not None]
        return {
            "config": self.config,
            "started_at": self.started_at,
            "stop_reason": self.stop_reason,
            "duration_s": round(self.duration_s, 3),
            "requests": len(self.outcomes),
            "requests_ok": len(ok),
            "orders_sent": orders_sent,
            "orders_accepted": orders_accepted,
            "orders_not_accepted": orders_sent - orders_accepted,
            "throughput": {
                "requests_per_s": round(len(self.outcomes) / duration, 2),
                "orders_accepted_per_s": round(orders_accepted / duration, 2),
            },
            "accept_latency": summarize_ms([o.latency_s for o in ok]),
            "all_responses_latency": summarize_ms([o.latency_s for o in self.outcomes]),
            "status_counts": self.status_counts(),
            "errors_by_status": self.errors_by_status(),
            "visibility": {
                "sampled": len(self.visibility),
                "visible": len(visible),
                "never_visible": len(self.visibility) - len(visible),
                "polls": sum(v.polls for v in self.visibility),
                "latency": summarize_ms(visible),
            },
            "per_second": self.per_second(),
        }
