"""The Cassandra side of the writer: one prepared INSERT, executed concurrently.

Not a multi-partition BATCH (a coordinator anti-pattern in Cassandra): each order is its own
partition, so independent concurrent writes go straight to their replicas (token-aware routing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cassandra.cluster import NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import PreparedStatement

from orderpipe_common.cassandra_session import consistency, get_session, reset_session
from orderpipe_common.model import Order
from orderpipe_common.observability import logger
from orderpipe_common.order_rows import INSERT_ORDER_CQL, order_to_row
from orderpipe_writer.settings import WriterSettings

# One outcome per order, in order: None when stored, else why not.
Outcomes = list[BaseException | None]


class OrderStore(Protocol):
    def insert_many(self, orders: Sequence[Order]) -> Outcomes: ...


class CassandraOrderStore:
    """Upserts orders by order_id (a redelivered message rewrites identical values)."""

    def __init__(self, settings: WriterSettings) -> None:
        self._settings = settings
        self._session: Session | None = None
        self._insert: PreparedStatement | None = None

    def _prepared(self) -> tuple[Session, PreparedStatement]:
        session = get_session(self._settings)
        if session is not self._session or self._insert is None:
            # Prepared once per session (i.e. per process, or again after a reconnect).
            session.set_keyspace(self._settings.cassandra_keyspace)
            insert = session.prepare(INSERT_ORDER_CQL)
            insert.consistency_level = consistency(self._settings.cassandra_write_consistency)
            insert.is_idempotent = True  # lets the driver's retry policy retry timeouts safely
            self._session, self._insert = session, insert
        assert self._insert is not None
        return session, self._insert

    def _execute(self, orders: Sequence[Order]) -> Outcomes:
        try:
            session, insert = self._prepared()
        except NoHostAvailable as error:
            return [error] * len(orders)
        results = execute_concurrent_with_args(
            session,
            insert,
            [order_to_row(order) for order in orders],
            concurrency=self._settings.writer_max_in_flight,
            raise_on_first_error=False,
        )
        return [None if ok else outcome for ok, outcome in results]

    def insert_many(self, orders: Sequence[Order]) -> Outcomes:
        outcomes = self._execute(orders)
        unreachable = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, NoHostAvailable)]
        if unreachable:
            # After a Lambda freeze/thaw the pooled connections may be dead: rebuild once and retry.
            logger.warning("cassandra unreachable; reconnecting once", extra={"records": len(unreachable)})
            reset_session()
            self._session = self._insert = None
            retried = self._execute([orders[i] for i in unreachable])
            for index, outcome in zip(unreachable, retried, strict=True):
                outcomes[index] = outcome
        return outcomes
