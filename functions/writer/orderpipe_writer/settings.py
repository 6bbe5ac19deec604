from __future__ import annotations

from pydantic import Field

from orderpipe_common.settings import CassandraSettings


class WriterSettings(CassandraSettings):
    # Requests in flight at once per invocation: enough to keep a node busy, bounded so that
    # max_concurrency x this stays within what the cluster is sized for.
    writer_max_in_flight: int = Field(default=64, ge=1, le=1024)
