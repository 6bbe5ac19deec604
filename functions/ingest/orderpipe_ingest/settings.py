"""Settings of the ingest function, read from the environment once per process."""

from __future__ import annotations

from pydantic import Field

from orderpipe_common.per_process import per_process
from orderpipe_common.settings import FunctionSettings, load


class IngestSettings(FunctionSettings):
    # Names of real resources: no defaults (the stack and the local runtime set them).
    orders_queue_url: str = Field(min_length=1)
    idempotency_table_name: str = Field(min_length=1)
    # How long an Idempotency-Key is remembered (the answer to a retried POST is replayed).
    idempotency_expires_after_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    # How long a POST may take before ingest gives up on SQS or DynamoDB and answers 503 (and at most
    # the function's timeout minus half a second). Every call and retry fits in it.
    answer_budget_seconds: float = Field(default=2.5, gt=0, le=30)
    # Rounds of re-sending the entries that SendMessageBatch reported Failed.
    batch_send_attempts: int = Field(default=4, ge=1, le=10)
    # Send with MessageGroupId = producer (SQS fair queues on a standard queue: a noisy producer does
    # not delay the others' orders; publisher.fair_group_id fits long ids in SQS's 128 characters). Off for an SQS endpoint that refuses group ids on standard queues.
    fair_queue_by_producer: bool = True
    # Seconds a producer is told to wait (Retry-After) when the queue is unavailable.
    retry_after_seconds: int = Field(default=5, ge=1, le=3600)


@per_process
def get_settings() -> IngestSettings:
    return load(IngestSettings)
