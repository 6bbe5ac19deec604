from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from orderpipe_common.identity import PRODUCER_PATTERN
from orderpipe_common.settings import CassandraSettings
from orderpipe_common.tuning import DEFAULT_TUNING


class ReaderSettings(CassandraSettings):
    cache_table_name: str
    cache_ttl_seconds: int = Field(default=DEFAULT_TUNING.cache_ttl_seconds, ge=1)
    # Hint for clients polling an order that is accepted but not yet written.
    not_found_retry_after_seconds: int = Field(default=1, ge=1)
    unavailable_retry_after_seconds: int = Field(default=5, ge=1)
    # Owner of the orders stored before orders named their producer (migration 0002).
    legacy_producer: str = Field(default="legacy", pattern=PRODUCER_PATTERN)
    # IAM mode: principals (role or user ARNs) that may read every producer's orders (JWT mode: the
    # orders/read-all scope). Comma-separated.
    read_all_principals: list[str] = Field(default_factory=list)
    # How long a GET may take before the reader gives up on Cassandra and answers 503 (and at most the
    # function's timeout minus half a second). Cache calls and the Cassandra read all fit in it.
    answer_budget_seconds: float = Field(default=2.0, gt=0, le=30)

    @field_validator("read_all_principals", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
