"""The schema function per backend: keyspace creation in the form each accepts, and Amazon Keyspaces'
asynchronous DDL waited for before a table is used.

A fake session stands in for Amazon Keyspaces (a unit test of logic: this machine cannot reach the
service). It behaves as the Keyspaces developer guide describes: CREATE returns at once, the keyspace
appears in system_schema_mcs.keyspaces only when ready, tables and types report CREATING (UPDATING
after ALTER) for a while, then ACTIVE; using a table before then fails as an unconfigured table. The
same migrations run on a real Apache Cassandra node in tests/integration/test_schema.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from orderpipe_schema.dialects import Astra, Keyspaces, SchemaNotReadyError, SelfManaged
from orderpipe_schema.migrations import apply_migrations, created_tables, load_migrations

KEYSPACE = "orderpipe"


@dataclass
class Rows:
    rows: list[Any]

    def one(self) -> Any:
        return self.rows[0] if self.rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)


@dataclass
class Row:
    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


class UnconfiguredTableError(Exception):
    pass


@dataclass
class FakeKeyspaces:
    """Amazon Keyspaces as seen through CQL: DDL is asynchronous."""

    polls_until_ready: int = 2
    log: list[str] = field(default_factory=list)
    keyspaces: dict[str, int] = field(default_factory=dict)  # name -> polls left until visible
    objects: dict[tuple[str, str], list[str]] = field(
        default_factory=dict
    )  # (kind, name) -> statuses to report
    ledger: list[Row] = field(default_factory=list)
    columns: set[tuple[str, str]] = field(default_factory=set)

    def set_keyspace(self, keyspace: str) -> None:
        self.log.append(f"USE {keyspace}")

    def _status(self, kind: str, name: str) -> str | None:
        statuses = self.objects.get((kind, name))
        if statuses is None:
            return None
        return statuses.pop(0) if len(statuses) > 1 else statuses[0]

    def _require_active(self, table: str) -> None:
        statuses = self.objects.get(("table", table))
        if statuses is None or statuses[0] != "ACTIVE":
            raise UnconfiguredTableError(f"unconfigured table {table} ({statuses})")

    def execute(self, statement: Any, parameters: tuple[Any, ...] | None = None) -> Rows:
        text = " ".join(getattr(statement, "query_string", statement).split())
        self.log.append(text)
        pending = ["CREATING"] * self.polls_until_ready + ["ACTIVE"]
        if match := re.match(r"CREATE KEYSPACE IF NOT EXISTS (\w+) WITH replication = (.*)", text):
            assert match[2] == "{'class': 'SingleRegionStrategy'}", match[2]
            self.keyspaces.setdefault(match[1], self.polls_until_ready)
            return Rows([])
        if match := re.match(r"CREATE TABLE IF NOT EXISTS (?:\w+\.)?(\w+) \((.*)\)", text):
            self.objects.setdefault(("table", match[1]), pending)
            return Rows([])
        if match := re.match(r"CREATE TYPE IF NOT EXISTS (\w+)", text):
            self.objects.setdefault(("type", match[1]), pending)
            return Rows([])
        if match := re.match(r"ALTER TABLE (\w+) ADD (\w+) ", text):
            self._require_active(match[1])
            self.objects[("table", match[1])] = ["UPDATING"] * self.polls_until_ready + ["ACTIVE"]
            self.columns.add((match[1], match[2]))
            return Rows([])
        if "FROM system_schema_mcs.keyspaces" in text:
            assert parameters is not None
            left = self.keyspaces.get(parameters[0])
            if left is None:
                return Rows([])
            if left > 0:
                self.keyspaces[parameters[0]] = left - 1
                return Rows([])
            return Rows([Row({"keyspace_name": parameters[0]})])
        if "FROM system_schema_mcs.tables" in text:
            assert parameters is not None
            status = self._status("table", parameters[1])
            return Rows([Row({"status": status})] if status else [])
        if "FROM system_schema_mcs.types" in text:
            assert parameters is not None
            status = self._status("type", parameters[1])
            return Rows([Row({"type_name": parameters[1], "status": status})] if status else [])
        if "FROM system_schema.columns" in text:
            assert parameters is not None
            return Rows([Row({})] if (parameters[1], parameters[2]) in self.columns else [])
        if match := re.match(r"SELECT version, name, checksum FROM \w+\.(\w+)", text):
            self._require_active(match[1])
            return Rows(list(self.ledger))
        if match := re.match(r"INSERT INTO \w+\.(\w+)", text):
            self._require_active(match[1])
            assert parameters is not None
            self.ledger.append(
                Row({"version": parameters[0], "name": parameters[1], "checksum": parameters[2]})
            )
            return Rows([])
        raise AssertionError(f"unexpected statement {text}")


@dataclass
class Clock:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def keyspaces_dialect(clock: Clock, timeout: float = 60.0) -> Keyspaces:
    return Keyspaces(timeout_seconds=timeout, poll_seconds=1.0, sleep=clock.sleep, clock=clock)


def test_keyspaces_waits_for_each_new_object_to_be_active_before_using_it() -> None:
    # Given Amazon Keyspaces, where every keyspace, type and table takes two polls to be ready,
    session = FakeKeyspaces(polls_until_ready=2)
    clock = Clock()
    # when the migrations are applied,
    report = apply_migrations(session, keyspace=KEYSPACE, dialect=keyspaces_dialect(clock))
    # then all of them are applied and recorded (no statement met a table that was not ACTIVE yet),
    assert report.applied == tuple(m.version for m in load_migrations())
    assert [row.version for row in session.ledger] == list(report.applied)
    # the keyspace was created the way Keyspaces takes it, and each object was polled until ready:
    # the keyspace, two types, the ledger and the orders table, and the orders table again after
    # its ALTER (UPDATING -> ACTIVE).
    assert session.log[0].startswith("CREATE KEYSPACE IF NOT EXISTS orderpipe WITH replication")
    waited_for = [entry for entry in session.log if "system_schema_mcs" in entry]
    assert len(waited_for) == 6 * 3  # six objects, three polls each (two not ready, one ready)
    assert clock.sleeps == [1.0] * (6 * 2)
    # and a table's first use comes after the poll that saw it ACTIVE.
    first_read = next(i for i, e in enumerate(session.log) if e.startswith("SELECT version, name, checksum"))
    assert "system_schema_mcs.tables" in session.log[first_read - 1]


def test_keyspaces_run_again_applies_nothing_and_uses_only_active_tables() -> None:
    session = FakeKeyspaces(polls_until_ready=1)
    apply_migrations(session, keyspace=KEYSPACE, dialect=keyspaces_dialect(Clock()))
    again = apply_migrations(session, keyspace=KEYSPACE, dialect=keyspaces_dialect(Clock()))
    assert again.applied == ()
    assert again.already_applied == tuple(m.version for m in load_migrations())


def test_keyspaces_gives_up_within_its_budget_naming_the_object_and_its_status() -> None:
    # Given a table that stays CREATING longer than the budget,
    session = FakeKeyspaces(polls_until_ready=1000)
    clock = Clock()
    # when the schema is applied, then it stops within the budget with an error saying what it waited for.
    with pytest.raises(
        SchemaNotReadyError, match=r"keyspace orderpipe ACTIVE within 10 s \(last seen: not listed yet\)"
    ):
        apply_migrations(session, keyspace=KEYSPACE, dialect=keyspaces_dialect(clock, timeout=10))
    assert clock.now <= 10
    session = FakeKeyspaces(polls_until_ready=8)
    session.keyspaces[KEYSPACE] = 0  # the keyspace is ready at once; the ledger table is not
    with pytest.raises(
        SchemaNotReadyError,
        match=r"table orderpipe.schema_migrations ACTIVE within 5 s \(last seen: CREATING\)",
    ):
        apply_migrations(session, keyspace=KEYSPACE, dialect=keyspaces_dialect(Clock(), timeout=5))


def test_the_budget_covers_all_the_waits_of_one_run() -> None:
    # Six objects of three polls each need 12 s of sleeping in all; a 7 s budget stops the run.
    clock = Clock()
    with pytest.raises(SchemaNotReadyError):
        apply_migrations(
            FakeKeyspaces(polls_until_ready=2), keyspace=KEYSPACE, dialect=keyspaces_dialect(clock, timeout=7)
        )
    assert clock.now <= 7


@dataclass
class FakeAstra:
    keyspaces: set[str]
    log: list[str] = field(default_factory=list)

    def execute(self, statement: Any, parameters: tuple[Any, ...] | None = None) -> Rows:
        text = " ".join(getattr(statement, "query_string", statement).split())
        self.log.append(text)
        if "FROM system_schema.keyspaces" in text:
            assert parameters is not None
            return Rows([Row({"keyspace_name": parameters[0]})] if parameters[0] in self.keyspaces else [])
        raise AssertionError(f"unexpected statement {text}")


def test_astra_never_creates_the_keyspace_and_fails_clearly_when_it_is_missing() -> None:
    # Given an Astra database whose keyspace was not created (Astra creates keyspaces outside CQL),
    session = FakeAstra(keyspaces={"default_keyspace"})
    # when the schema is applied, then it fails before any DDL, saying how to create it.
    with pytest.raises(SchemaNotReadyError, match=r"create it in the Astra Portal .* -k orderpipe"):
        apply_migrations(session, keyspace=KEYSPACE, dialect=Astra())
    assert not any(entry.startswith("CREATE") for entry in session.log)


def test_astra_with_the_keyspace_present_goes_on_to_the_tables() -> None:
    session = FakeAstra(keyspaces={KEYSPACE})
    Astra().ensure_keyspace(session, KEYSPACE)
    assert session.log == ["SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s"]


def test_self_managed_creates_the_keyspace_with_its_replication() -> None:
    statements: list[str] = []

    class Recorder:
        def execute(self, statement: str) -> None:
            statements.append(statement)

    SelfManaged({"class": "NetworkTopologyStrategy", "dc1": 3}).ensure_keyspace(Recorder(), KEYSPACE)
    assert statements == [
        "CREATE KEYSPACE IF NOT EXISTS orderpipe WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': '3'}"
    ]


def test_the_tables_the_migrations_create_are_known_for_the_grants() -> None:
    # The stack grants Amazon Keyspaces actions on exactly these table ARNs (stacks/functions.py).
    assert created_tables() == ("schema_migrations", "orders")


def test_no_table_relies_on_ttl() -> None:
    # Amazon Keyspaces needs TTL enabled per table (CUSTOM_PROPERTIES = {'ttl': {'status': 'enabled'}})
    # before USING TTL or default_time_to_live work. No table here expires rows (the read cache and
    # idempotency records live in DynamoDB, with DynamoDB's TTL); a migration that starts relying on
    # TTL must add that property for Keyspaces.
    for migration in load_migrations():
        for statement in migration.statements:
            assert not re.search(r"\bTTL\b|default_time_to_live", statement, re.IGNORECASE), statement
