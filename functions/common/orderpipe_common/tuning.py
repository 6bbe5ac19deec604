"""Pipeline tuning shared by the CDK stack and the local runtime, so both behave alike.

These are settings, not code: the stack takes overrides from CDK context (`orderpipe:tuning`), the
local runtime from its command line, both through `PipelineTuning.with_overrides`.

The queue settings are budgets with a stated meaning, checked together by `validate()`:

- `cassandra_outage_budget_seconds` = (max_receive_count - 1) x visibility timeout: how long Cassandra
  may be unavailable before orders reach the DLQ. A message the writer cannot store comes back after
  each visibility timeout; its last chance is the max_receive_count-th receive, that many minus one
  timeouts after the first. Default: 21 receives, 180 s apart, = 1 hour.
- The oldest-message-age alarm fires well before that (at most half of it; default 5 minutes), so
  an operator hears of an outage while the queue still holds every order.
- The orders queue keeps messages longer than the outage budget (else they would expire in the queue
  before reaching the DLQ) and shorter than the DLQ: a message keeps its original enqueue time when
  it moves, so its time in the queue comes off its time in the DLQ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, kw_only=True)
class UsagePlanLimits:
    """Each producer's API key limits: the stack's defaults (orderpipe:api* context) and the local plan's."""

    rate_limit: int = 500  # steady-state requests per second
    burst_limit: int = 1000  # requests
    quota_per_day: int = 10_000_000  # requests


DEFAULT_USAGE_PLAN = UsagePlanLimits()


@dataclass(frozen=True, kw_only=True)
class PipelineTuning:
    # Function timeouts (the API functions answer within their own, shorter answer budgets)
    ingest_timeout_seconds: int = 10
    reader_timeout_seconds: int = 10
    # Event source mapping: SQS -> writer
    writer_batch_size: int = 100
    writer_batching_window_seconds: int = 1
    writer_max_concurrency: int = 5
    writer_timeout_seconds: int = 30
    # Queue (see the module docstring: budgets with a stated meaning)
    max_receive_count: int = 21
    queue_retention_days: int = 4
    dlq_retention_days: int = 14
    # Read cache
    cache_ttl_seconds: int = 300
    # How long API Gateway reuses an authorizer decision per token (0: none); also how long a
    # revoked producer may still be served (API Gateway allows 0-3600).
    authorizer_cache_ttl_seconds: int = 300
    # Cassandra
    write_consistency: str = "LOCAL_QUORUM"
    read_consistency: str = "LOCAL_QUORUM"
    # Alarm thresholds
    alarm_queue_visible_messages: int = 10_000
    alarm_oldest_message_age_seconds: int = 300
    alarm_dlq_visible_messages: int = 0
    alarm_api_5xx_rate_percent: float = 1.0
    alarm_reader_p99_latency_ms: int = 1_000

    @property
    def visibility_timeout_seconds(self) -> int:
        # AWS's guidance for SQS event sources: at least 6x the function timeout, so a batch that is
        # retried by Lambda is not delivered again while still in flight.
        return 6 * self.writer_timeout_seconds

    @property
    def cassandra_outage_budget_seconds(self) -> int:
        """How long Cassandra may be unavailable before orders reach the DLQ."""
        return outage_budget_seconds(self.max_receive_count, self.visibility_timeout_seconds)

    def with_overrides(self, overrides: dict[str, Any]) -> PipelineTuning:
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f"unknown tuning setting(s): {', '.join(unknown)}; known: {', '.join(known)}")
        coerced = {name: type(getattr(self, name))(value) for name, value in overrides.items()}
        tuned = replace(self, **coerced)
        tuned.validate()
        return tuned

    def validate(self) -> None:
        if not 1 <= self.writer_batch_size <= 10_000:
            raise ValueError("writer_batch_size must be between 1 and 10000")
        if self.writer_batch_size > 10 and self.writer_batching_window_seconds < 1:
            raise ValueError(
                "writer_batch_size above 10 needs writer_batching_window_seconds >= 1 (SQS rule)"
            )
        if not 2 <= self.writer_max_concurrency <= 1000:
            raise ValueError("writer_max_concurrency must be between 2 and 1000 (SQS event source rule)")
        if not 1 <= self.max_receive_count <= 1000:
            raise ValueError("max_receive_count must be between 1 and 1000")
        if not 0 <= self.authorizer_cache_ttl_seconds <= 3600:
            raise ValueError("authorizer_cache_ttl_seconds must be between 0 and 3600 (API Gateway rule)")
        if self.visibility_timeout_seconds > 43_200:
            raise ValueError("6 x writer_timeout_seconds exceeds the SQS visibility timeout maximum (12 h)")
        if not 1 <= self.queue_retention_days < self.dlq_retention_days <= 14:
            raise ValueError(
                "queue_retention_days must be shorter than dlq_retention_days (at most 14, the SQS maximum): "
                "a message keeps its enqueue time when it moves to the DLQ"
            )
        budget = self.cassandra_outage_budget_seconds
        if budget >= self.queue_retention_days * 86_400:
            raise ValueError(
                f"the Cassandra outage budget ({budget} s = (max_receive_count - 1) x visibility timeout) "
                "must be shorter than queue_retention_days, or orders expire in the queue before the DLQ"
            )
        if self.alarm_oldest_message_age_seconds > budget / 2:
            raise ValueError(
                f"alarm_oldest_message_age_seconds ({self.alarm_oldest_message_age_seconds}) must be at most "
                f"half the Cassandra outage budget ({budget} s), so the alarm comes well before the DLQ"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "visibility_timeout_seconds": self.visibility_timeout_seconds,
            "cassandra_outage_budget_seconds": self.cassandra_outage_budget_seconds,
        }


def outage_budget_seconds(max_receive_count: int, visibility_timeout_seconds: int) -> int:
    """(max_receive_count - 1) x visibility timeout: from a message's first failed receive to its last."""
    return (max_receive_count - 1) * visibility_timeout_seconds


DEFAULT_TUNING = PipelineTuning()

# Named starting points (the stack's `orderpipe:tuningProfile`, `orderpipe run --tuning-profile`);
# `orderpipe:tuning` / `--tuning` overrides apply on top. docs/benchmarks.md measures the trade-off.
TUNING_PROFILES: dict[str, PipelineTuning] = {
    # Throughput and cost: batches of up to 100 gathered for up to 1 s (few, full writer invocations).
    "default": DEFAULT_TUNING,
    # Latency: no batching window (a batch goes to the writer as soon as messages arrive) and small
    # batches (SQS allows no window only up to 10): POST -> readable in a fraction of a second, for
    # about ten times the writer invocations per order at high rates.
    "low_latency": replace(DEFAULT_TUNING, writer_batch_size=10, writer_batching_window_seconds=0),
}


def tuning_profile(name: str) -> PipelineTuning:
    try:
        return TUNING_PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown tuning profile {name!r}; known: {', '.join(TUNING_PROFILES)}") from None
