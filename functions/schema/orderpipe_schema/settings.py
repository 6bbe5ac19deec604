from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator, model_validator

from orderpipe_common.cassandra_backends import KEYSPACES_REPLICATION
from orderpipe_common.settings import CassandraSettings
from orderpipe_schema.dialects import Astra, Keyspaces, SchemaDialect, SelfManaged


class SchemaSettings(CassandraSettings):
    # Self-managed only (required there): e.g. {"class": "SimpleStrategy", "replication_factor": 1}
    # locally, {"class": "NetworkTopologyStrategy", "dc1": 3} when deployed. Amazon Keyspaces takes
    # SingleRegionStrategy (the default there); Astra creates keyspaces outside CQL (none here).
    cassandra_replication: dict[str, str | int] | None = None
    # Amazon Keyspaces creates tables asynchronously: how long to wait for each to be ACTIVE, and how
    # often to look. Bounded below the custom resource function's 300 s timeout.
    schema_ddl_timeout_seconds: float = Field(default=240.0, gt=0, le=280)
    schema_ddl_poll_seconds: float = Field(default=2.0, gt=0, le=30)

    @field_validator("cassandra_replication", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        if value == "":
            return None
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _replication_fits_the_backend(self) -> SchemaSettings:
        backend = self.cassandra_backend
        replication = self.cassandra_replication
        if backend == "self-managed" and not replication:
            raise ValueError(
                "environment variable CASSANDRA_REPLICATION is not set (needed with CASSANDRA_BACKEND=self-managed)"
            )
        if (
            backend == "keyspaces"
            and replication
            and replication.get("class") != KEYSPACES_REPLICATION["class"]
        ):
            raise ValueError(
                f"CASSANDRA_REPLICATION must be {json.dumps(KEYSPACES_REPLICATION)} with CASSANDRA_BACKEND=keyspaces "
                "(multi-Region keyspaces are not supported by this stack)"
            )
        if backend == "astra" and replication:
            raise ValueError(
                "CASSANDRA_REPLICATION is not used with CASSANDRA_BACKEND=astra: Astra sets replication itself"
            )
        return self

    def dialect(self) -> SchemaDialect:
        if self.cassandra_backend == "keyspaces":
            return Keyspaces(
                timeout_seconds=self.schema_ddl_timeout_seconds, poll_seconds=self.schema_ddl_poll_seconds
            )
        if self.cassandra_backend == "astra":
            return Astra()
        assert self.cassandra_replication is not None, "checked above"
        return SelfManaged(self.cassandra_replication)
