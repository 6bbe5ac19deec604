"""Schema migrations on a real Cassandra node."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from orderpipe_common.model import LineItem, Order, ShippingAddress
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
