"""Schema migrations on a real Cassandra node."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from orderpipe_common.deadlines import Deadline
from orderpipe_common.identity import Caller
from orderpipe_common.model import LineItem, Order, ShippingAddress
from orderpipe_common.order_rows import SELECT_ORDER_CQL, order_from_row
from orderpipe_reader.logic import read_order
from orderpipe_schema.migrations import MigrationError, apply_migrations, load_migrations

pytestmark = pytest.mark.cassandra


def test_migrations_apply_twice_and_are_recorded(cql_session):
    # Given a fresh keyspace
    keyspace = f"schema_test_{uuid.uuid4().hex[:8]}"
    replication: dict[str, str | int] = {"class": "SimpleStrategy", "replication_factor": 1}
    # When the migrations are applied twice
    first = apply_migrations(cql_session, keyspace=keyspace, replication=replication)
    second = apply_migrations(cql_session, keyspace=keyspace, replication=replication)
    # Then the first run applied every migration, the second none, and each is recorded once
    versions = tuple(m.version for m in load_migrations())
    assert first.applied == versions
    assert second.applied == () and second.already_applied == versions
    rows = list(cql_session.execute(f"SELECT version, checksum FROM {keyspace}.schema_migrations"))
    assert sorted(r.version for r in rows) == list(versions)


def test_orders_table_holds_every_field_of_the_contract(cql_session, orders_keyspace):
    # Given the migrated keyspace
    # When we read its schema from Cassandra
    columns = {
        row.column_name: row.type
        for row in cql_session.execute(
            "SELECT column_name, type FROM system_schema.columns WHERE keyspace_name=%s AND table_name='orders'",
            (orders_keyspace,),
        )
    }
    udts = {
        row.type_name: dict(zip(row.field_names, row.field_types, strict=True))
        for row in cql_session.execute(
            "SELECT type_name, field_names, field_types FROM system_schema.types WHERE keyspace_name=%s",
            (orders_keyspace,),
        )
    }
    # Then the table and its types follow the model field for field (the model is the source)
    assert set(columns) == set(Order.model_fields)
    assert columns["order_id"] == "uuid" and columns["accepted_at"] == "timestamp"
    assert set(udts["line_item"]) == set(LineItem.model_fields)
    assert udts["line_item"]["unit_price"] == "decimal" and udts["line_item"]["quantity"] == "int"
    assert set(udts["shipping_address"]) == set(ShippingAddress.model_fields)


def test_an_edited_applied_migration_is_refused(cql_session, tmp_path: Path):
    # Given a keyspace where migration 0001 was applied
    keyspace = f"schema_test_{uuid.uuid4().hex[:8]}"
    replication: dict[str, str | int] = {"class": "SimpleStrategy", "replication_factor": 1}
    (tmp_path / "0001_things.cql").write_text("CREATE TABLE IF NOT EXISTS things (id int PRIMARY KEY);")
    apply_migrations(
        cql_session, keyspace=keyspace, replication=replication, migrations=load_migrations(tmp_path)
    )
    # When the same migration is edited and applied again
    (tmp_path / "0001_things.cql").write_text(
        "CREATE TABLE IF NOT EXISTS things (id int PRIMARY KEY, x int);"
    )
    # Then it is refused, naming the migration
    with pytest.raises(MigrationError, match="0001_things was changed"):
        apply_migrations(
            cql_session, keyspace=keyspace, replication=replication, migrations=load_migrations(tmp_path)
        )


class _NoCache:
    def get(self, order_id: uuid.UUID, deadline: Deadline) -> None:
        return None

    def put(self, order: Order, deadline: Deadline) -> None:
        return None


class _Rows:
    def __init__(self, session, keyspace: str) -> None:
        self._session, self._keyspace = session, keyspace

    def find(self, order_id: uuid.UUID, deadline: Deadline | None = None) -> Order | None:
        self._session.set_keyspace(self._keyspace)
        row = self._session.execute(SELECT_ORDER_CQL.replace("?", "%s"), (order_id,)).one()
        return order_from_row(row) if row is not None else None


def test_adding_the_producer_column_keeps_old_orders_readable_as_the_legacy_producers(cql_session):
    # Given a keyspace with only the first migration, holding an order written before producers
    keyspace = f"schema_test_{uuid.uuid4().hex[:8]}"
    replication: dict[str, str | int] = {"class": "SimpleStrategy", "replication_factor": 1}
    migrations = load_migrations()
    apply_migrations(cql_session, keyspace=keyspace, replication=replication, migrations=migrations[:1])
    old_id = uuid.uuid4()
    cql_session.execute(
        f"INSERT INTO {keyspace}.orders (order_id, customer_id, currency, items, accepted_at) "
        "VALUES (%s, 'cust-old', 'EUR', [{sku: 'SKU-OLD', quantity: 2, unit_price: 9.99}], toTimestamp(now()))",
        (old_id,),
    )
    # When the producer migration is applied (twice: a re-run after an interruption)
    report = apply_migrations(cql_session, keyspace=keyspace, replication=replication)
    cql_session.execute(f"DELETE FROM {keyspace}.schema_migrations WHERE version = 2")
    again = apply_migrations(cql_session, keyspace=keyspace, replication=replication)
    # Then it applied once, re-applied without error, and the old order is still there, unowned
    assert 2 in report.applied and 2 in again.applied
    source = _Rows(cql_session, keyspace)
    stored = source.find(old_id)
    assert stored is not None and stored.producer is None and stored.items[0].sku == "SKU-OLD"

    # ...and the reader answers it as the legacy producer's: readable by it and by read-all, no one else
    def read_as(producer: str, read_all: bool = False) -> Order | None:
        caller = Caller(producer=producer, read_all=read_all, request_id="r", source_ip="127.0.0.1")
        return read_order(
            old_id,
            caller=caller,
            legacy_producer="legacy",
            cache=_NoCache(),
            source=source,
            deadline=Deadline.after(10),
        )

    legacy_view = read_as("legacy")
    assert (
        legacy_view is not None and legacy_view.producer == "legacy" and legacy_view.customer_id == "cust-old"
    )
    assert read_as("someone") is None
    assert read_as("auditor", read_all=True) is not None
