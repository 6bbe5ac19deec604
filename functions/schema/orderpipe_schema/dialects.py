"""How each backend takes the schema: where the keyspace comes from, and when new DDL is usable.

- self-managed: `CREATE KEYSPACE IF NOT EXISTS` with the configured replication; DDL is usable once
  the driver has seen schema agreement (it waits for it after every DDL statement).
- keyspaces (Amazon Keyspaces): the keyspace is created in CQL with `SingleRegionStrategy`, but
  keyspaces, tables, types and column additions are created asynchronously: the statement returns
  while the object is still CREATING/UPDATING. The documented pattern is to poll
  `system_schema_mcs.keyspaces` (a keyspace appears there when ready) and `system_schema_mcs.tables`
  (`status` = ACTIVE); types are polled in `system_schema_mcs.types` the same way. A table is only
  used after it is ACTIVE.
- astra (DataStax Astra DB Serverless): CREATE KEYSPACE is not supported in CQL; the keyspace is
  created in the Astra Portal, the DevOps API or the Astra CLI. The schema function checks that it
  exists and fails naming what to do if not.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import SimpleStatement

from orderpipe_common.cassandra_backends import KEYSPACES_REPLICATION
from orderpipe_common.observability import logger


class SchemaNotReadyError(RuntimeError):
    """The backend did not make a DDL change usable in time (or the keyspace it needs is missing)."""


class SchemaDialect(Protocol):
    def ensure_keyspace(self, session: Session, keyspace: str) -> None: ...

    def wait_until_usable(self, session: Session, keyspace: str, statement: str) -> None:
        """Return once what `statement` (just executed) created or changed can be used."""
        ...


_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:\w+\.)?(?P<name>\w+)", re.I)
_ALTER_TABLE = re.compile(r"^\s*ALTER\s+TABLE\s+(?:\w+\.)?(?P<name>\w+)", re.I)
_CREATE_TYPE = re.compile(r"^\s*CREATE\s+TYPE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:\w+\.)?(?P<name>\w+)", re.I)


_TABLE_STATUS = "SELECT status FROM system_schema_mcs.tables WHERE keyspace_name = %s AND table_name = %s"
# Which statements Keyspaces applies asynchronously, and where to see when the object is ready.
_KEYSPACES_WAITS = (
    (_CREATE_TABLE, "table", _TABLE_STATUS),
    (_ALTER_TABLE, "table", _TABLE_STATUS),
    (
        _CREATE_TYPE,
        "type",
        "SELECT * FROM system_schema_mcs.types WHERE keyspace_name = %s AND type_name = %s",
    ),
)


def replication_cql(replication: Mapping[str, str | int]) -> str:
    pairs = ", ".join(f"'{key}': '{value}'" for key, value in replication.items())
    return "{" + pairs + "}"


@dataclass(frozen=True)
class SelfManaged:
    replication: Mapping[str, str | int]

    def ensure_keyspace(self, session: Session, keyspace: str) -> None:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication_cql(self.replication)}"
        )

    def wait_until_usable(self, session: Session, keyspace: str, statement: str) -> None:
        return None  # the driver waited for schema agreement after the statement


@dataclass
class Keyspaces:
    """Amazon Keyspaces: create with SingleRegionStrategy, then poll system_schema_mcs until ACTIVE.

    `timeout_seconds` bounds all the waits of one schema run together (from the dialect's creation),
    so the custom resource answers within its function's timeout.
    """

    timeout_seconds: float = 240.0
    poll_seconds: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = self.clock() + self.timeout_seconds

    def ensure_keyspace(self, session: Session, keyspace: str) -> None:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication_cql(KEYSPACES_REPLICATION)}"
        )
        self._wait(
            session,
            f"keyspace {keyspace}",
            "SELECT keyspace_name FROM system_schema_mcs.keyspaces WHERE keyspace_name = %s",
            (keyspace,),
        )

    def wait_until_usable(self, session: Session, keyspace: str, statement: str) -> None:
        for pattern, kind, query in _KEYSPACES_WAITS:
            created = pattern.match(statement)
            if created:
                name = created["name"].lower()
                self._wait(session, f"{kind} {keyspace}.{name}", query, (keyspace, name))
                return

    def _wait(self, session: Session, what: str, query: str, parameters: tuple[str, ...]) -> None:
        """Poll until the row exists and, where it has one, its status is ACTIVE."""
        status = "not listed yet"
        while True:
            row = session.execute(
                SimpleStatement(query, consistency_level=ConsistencyLevel.LOCAL_QUORUM), parameters
            ).one()
            if row is not None:
                status = str(_field(row, "status") or "ACTIVE")
                if status == "ACTIVE":
                    return
            if self.clock() + self.poll_seconds > self._deadline:
                raise SchemaNotReadyError(
                    f"Amazon Keyspaces did not make {what} ACTIVE within {self.timeout_seconds:g} s "
                    f"(last seen: {status}); deploy again to resume (applied migrations are recorded)"
                )
            logger.info("waiting for amazon keyspaces", extra={"object": what, "status": status})
            self.sleep(self.poll_seconds)


def _field(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    return getattr(row, name, None)


@dataclass(frozen=True)
class Astra:
    def ensure_keyspace(self, session: Session, keyspace: str) -> None:
        row = session.execute(
            SimpleStatement(
                "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s",
                consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            ),
            (keyspace,),
        ).one()
        if row is None:
            raise SchemaNotReadyError(
                f"keyspace {keyspace} does not exist in the Astra database, and Astra DB does not create "
                "keyspaces in CQL: create it in the Astra Portal (your database > Add Keyspace), with the "
                f"Astra CLI (astra db create-keyspace <database> -k {keyspace}) or the DevOps API, then deploy again"
            )

    def wait_until_usable(self, session: Session, keyspace: str, statement: str) -> None:
        return None  # the driver waited for schema agreement after the statement
