"""Versioned CQL migrations, applied in order, idempotently, with a record of what was applied.

Migration files are `migrations/NNNN_name.cql`; each is applied once and recorded (version, name,
checksum) in `<keyspace>.schema_migrations`. Statements use IF NOT EXISTS, so a migration that was
interrupted half-way can be applied again; `ALTER TABLE t ADD c type` (which has no IF NOT EXISTS
before Cassandra 4.1, nor on Amazon Keyspaces) is skipped when system_schema already lists the
column. Editing an applied migration is refused: add a new one.

Where the keyspace comes from and when new DDL can be used differ per backend: a `SchemaDialect`
(orderpipe_schema.dialects) says so; Amazon Keyspaces creates tables asynchronously, so each DDL
statement there is followed by a wait until the table (or type) is ACTIVE, before anything uses it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import SimpleStatement

from orderpipe_common.observability import logger
from orderpipe_schema.dialects import SchemaDialect, SelfManaged

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.cql$")
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>\w+)\s*\(", re.IGNORECASE)
_ADD_COLUMN = re.compile(r"^ALTER\s+TABLE\s+(?P<table>\w+)\s+ADD\s+(?P<column>\w+)\s", re.IGNORECASE)


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


@dataclass(frozen=True)
class MigrationReport:
    keyspace: str
    applied: tuple[int, ...]
    already_applied: tuple[int, ...]


def _statements(cql: str) -> tuple[str, ...]:
    without_comments = "\n".join(line for line in cql.splitlines() if not line.strip().startswith("--"))
    return tuple(s.strip() for s in without_comments.split(";") if s.strip())


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.cql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name {path.name!r} is not NNNN_name.cql")
        text = path.read_text(encoding="utf-8")
        migrations.append(
            Migration(
                version=int(match["version"]),
                name=match["name"],
                statements=_statements(text),
                checksum=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return migrations


def created_tables(migrations: list[Migration] | None = None) -> tuple[str, ...]:
    """Every table the migrations create, with schema_migrations (grants name them one by one)."""
    names = ["schema_migrations"]
    for migration in load_migrations() if migrations is None else migrations:
        for statement in migration.statements:
            created = _CREATE_TABLE.match(statement)
            if created and created["name"].lower() not in names:
                names.append(created["name"].lower())
    return tuple(names)


def _adds_existing_column(session: Session, keyspace: str, statement: str) -> bool:
    added = _ADD_COLUMN.match(statement.strip())
    if added is None:
        return False
    rows = session.execute(
        SimpleStatement(
            "SELECT column_name FROM system_schema.columns "
            "WHERE keyspace_name = %s AND table_name = %s AND column_name = %s",
            consistency_level=ConsistencyLevel.LOCAL_ONE,
        ),
        (keyspace, added["table"].lower(), added["column"].lower()),
    )
    return rows.one() is not None


def apply_migrations(
    session: Session,
    *,
    keyspace: str,
    replication: dict[str, str | int] | None = None,
    migrations: list[Migration] | None = None,
    dialect: SchemaDialect | None = None,
) -> MigrationReport:
    """Apply what is not applied yet. `dialect` defaults to a self-managed cluster with `replication`."""
    migrations = load_migrations() if migrations is None else migrations
    if dialect is None:
        if replication is None:
            raise MigrationError("a self-managed cluster needs the keyspace's replication")
        dialect = SelfManaged(replication)
    dialect.ensure_keyspace(session, keyspace)
    ledger = (
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations "
        "(version int PRIMARY KEY, name text, checksum text, applied_at timestamp)"
    )
    session.execute(ledger)
    dialect.wait_until_usable(session, keyspace, ledger)
    read_applied = SimpleStatement(
        f"SELECT version, name, checksum FROM {keyspace}.schema_migrations",
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
    )
    recorded = {row.version: row for row in session.execute(read_applied)}

    session.set_keyspace(keyspace)
    applied, already = [], []
    for migration in sorted(migrations, key=lambda m: m.version):
        done = recorded.get(migration.version)
        if done is not None:
            if done.checksum != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} was changed after it was applied; "
                    "add a new migration instead"
                )
            already.append(migration.version)
            continue
        logger.info("applying migration", extra={"version": migration.version, "migration": migration.name})
        for statement in migration.statements:
            if _adds_existing_column(session, keyspace, statement):
                logger.info("column already there", extra={"statement": statement})
                continue
            session.execute(statement)
            dialect.wait_until_usable(session, keyspace, statement)
        session.execute(
            SimpleStatement(
                f"INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) "
                "VALUES (%s, %s, %s, %s)",
                consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            ),
            (migration.version, migration.name, migration.checksum, datetime.now(UTC)),
        )
        applied.append(migration.version)
    logger.info(
        "schema up to date",
        extra={"keyspace": keyspace, "applied": applied, "already_applied": already},
    )
    return MigrationReport(keyspace=keyspace, applied=tuple(applied), already_applied=tuple(already))
