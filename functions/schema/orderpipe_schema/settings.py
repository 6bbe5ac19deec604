from __future__ import annotations

import json
from typing import Any

from pydantic import field_validator

from orderpipe_common.settings import CassandraSettings


class SchemaSettings(CassandraSettings):
    # e.g. {"class": "SimpleStrategy", "replication_factor": 1} locally,
    # {"class": "NetworkTopologyStrategy", "dc1": 3} when deployed.
    cassandra_replication: dict[str, str | int]

    @field_validator("cassandra_replication", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value
