"""Reading one order from Cassandra by id, with a prepared SELECT at the configured consistency."""

from __future__ import annotations

import uuid
from typing import Protocol

from cassandra import DriverException, RequestExecutionException
from cassandra.cluster import NoHostAvailable, Session
from cassandra.query import PreparedStatement

from orderpipe_common.cassandra_session import (
    MIN_CALL_SECONDS,
    CassandraConfigurationError,
    call_bounded,
    consistency,
    run_with_reconnect,
)
from orderpipe_common.deadlines import Deadline
from orderpipe_common.errors import DomainError
from orderpipe_common.model import Order
from orderpipe_common.order_rows import SELECT_ORDER_CQL, order_from_row
from orderpipe_reader.settings import ReaderSettings


class StoreUnavailableError(DomainError):
    """Cassandra could not answer (unreachable, timed out, overloaded)."""


class OrderSource(Protocol):
    def find(self, order_id: uuid.UUID, deadline: Deadline) -> Order | None: ...


class CassandraOrderSource:
    def __init__(self, settings: ReaderSettings) -> None:
        self._settings = settings
        self._prepared_for: Session | None = None
        self._select: PreparedStatement | None = None

    def _statement(self, session: Session, deadline: Deadline) -> PreparedStatement:
        if session is not self._prepared_for or self._select is None:
            # Prepared once per session (i.e. per process, or again after a reconnect).
            select = call_bounded(lambda: self._prepare(session), deadline)
            self._prepared_for, self._select = session, select
        return self._select

    def _prepare(self, session: Session) -> PreparedStatement:
        session.set_keyspace(self._settings.cassandra_keyspace)
        select = session.prepare(SELECT_ORDER_CQL)
        # At LOCAL_QUORUM for both writes and reads, a read sees every acknowledged write.
        select.consistency_level = consistency(self._settings.cassandra_read_consistency)
        select.is_idempotent = True
        return select

    def find(self, order_id: uuid.UUID, deadline: Deadline) -> Order | None:
        """The order, or None; StoreUnavailableError when Cassandra cannot answer before `deadline`."""

        def select(session: Session) -> Order | None:
            statement = self._statement(session, deadline)
            timeout = deadline.timeout(self._settings.cassandra_request_timeout_seconds)
            row = session.execute(statement, (order_id,), timeout=max(timeout, MIN_CALL_SECONDS)).one()
            return order_from_row(row) if row is not None else None

        try:
            return run_with_reconnect(self._settings, select, deadline)
        except (
            NoHostAvailable,
            RequestExecutionException,
            DriverException,
            OSError,
            # A TLS or credentials mistake: logged with the setting to fix, answered like an outage.
            CassandraConfigurationError,
        ) as error:
            # The cause (driver error, host) goes to the log with the chained exception, not to callers.
            raise StoreUnavailableError("orders cannot be read right now; retry later") from error
