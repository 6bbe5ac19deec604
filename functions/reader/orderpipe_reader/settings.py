from __future__ import annotations

from pydantic import Field

from orderpipe_common.settings import CassandraSettings
from orderpipe_common.tuning import DEFAULT_TUNING


class ReaderSettings(CassandraSettings):
    cache_table_name: str
    cache_ttl_seconds: int = Field(default=DEFAULT_TUNING.cache_ttl_seconds, ge=1)
    # Hint for clients polling an order that is accepted but not yet written.
    not_found_retry_after_seconds: int = Field(default=1, ge=1)
    unavailable_retry_after_seconds: int = Field(default=5, ge=1)
