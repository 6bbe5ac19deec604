"""The Cassandra side of the writer: one prepared INSERT, executed concurrently, within a deadline.

Not a multi-partition BATCH (a coordinator anti-pattern in Cassandra): each order is its own
partition, so independent concurrent writes go straight to their replicas (token-aware routing).
Every request gets the time left before the invocation's deadline (at most the request timeout);
an order whose turn comes too late is not sent at all and is reported failed with the rest, so the
batch's failures are answered before the function times out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable, Session
from cassandra.query import PreparedStatement

from orderpipe_common.cassandra_session import (
    MIN_CALL_SECONDS,
    call_bounded,
    consistency,
    get_session,
    reset_session,
)
from orderpipe_common.deadlines import Deadline
from orderpipe_common.errors import DomainError
from orderpipe_common.model import Order
from orderpipe_common.observability import logger
from orderpipe_common.order_rows import INSERT_ORDER_CQL, order_to_row
from orderpipe_writer.settings import WriterSettings

# One outcome per order, in order: None when stored, else why not.
Outcomes = list[BaseException | None]


class DeadlineReachedError(DomainError):
    """The order was not sent: the invocation's deadline came first (it is retried with its message)."""


class OrderStore(Protocol):
    def insert_many(self, orders: Sequence[Order], deadline: Deadline) -> Outcomes: ...


class CassandraOrderStore:
    """Upserts orders by order_id (a redelivered message rewrites identical values)."""

    def __init__(self, settings: WriterSettings) -> None:
        self._settings = settings
        self._session: Session | None = None
        self._insert: PreparedStatement | None = None

    def _prepared(self, deadline: Deadline) -> tuple[Session, PreparedStatement]:
        session = get_session(self._settings, deadline)
        if session is not self._session or self._insert is None:
            # Prepared once per session (i.e. per process, or again after a reconnect).
            insert = call_bounded(lambda: self._prepare(session), deadline)
            self._session, self._insert = session, insert
        assert self._insert is not None
        return session, self._insert

    def _prepare(self, session: Session) -> PreparedStatement:
        session.set_keyspace(self._settings.cassandra_keyspace)
        insert = session.prepare(INSERT_ORDER_CQL)
        insert.consistency_level = consistency(self._settings.cassandra_write_consistency)
        insert.is_idempotent = True  # lets the driver's retry policy retry timeouts safely
        return insert

    def _execute(self, orders: Sequence[Order], deadline: Deadline) -> Outcomes:
        try:
            session, insert = self._prepared(deadline)
        except (NoHostAvailable, DriverException) as error:
            return [error] * len(orders)
        return execute_within(
            session,
            insert,
            [order_to_row(order) for order in orders],
            deadline=deadline,
            request_timeout=self._settings.cassandra_request_timeout_seconds,
            concurrency=self._settings.writer_max_in_flight,
        )

    def insert_many(self, orders: Sequence[Order], deadline: Deadline) -> Outcomes:
        outcomes = self._execute(orders, deadline)
        unreachable = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, NoHostAvailable)]
        if unreachable and deadline.remaining() > MIN_CALL_SECONDS:
            # After a Lambda freeze/thaw the pooled connections may be dead: rebuild once and retry.
            logger.warning("cassandra unreachable; reconnecting once", extra={"records": len(unreachable)})
            reset_session()
            self._session = self._insert = None
            retried = self._execute([orders[i] for i in unreachable], deadline)
            for index, outcome in zip(unreachable, retried, strict=True):
                outcomes[index] = outcome
        return outcomes


def execute_within(
    session: Session,
    statement: PreparedStatement,
    rows: Sequence[Sequence[Any]],
    *,
    deadline: Deadline,
    request_timeout: float,
    concurrency: int,
) -> Outcomes:
    """Execute `statement` once per row, `concurrency` at a time; one outcome per row, by `deadline`.

    Like the driver's execute_concurrent, but each request's timeout is what is left before the
    deadline (at most `request_timeout`), and rows not started by then fail without being sent.
    """
    outcomes: Outcomes = [None] * len(rows)
    finished = [False] * len(rows)
    lock = threading.Lock()
    all_done = threading.Event()
    state = {"next": 0, "finished": 0}

    def finish(index: int, outcome: BaseException | None) -> None:
        with lock:
            if finished[index]:  # already given up on at the deadline
                return
            finished[index], outcomes[index] = True, outcome
            state["finished"] += 1
            done = state["finished"] == len(rows)
        if done:
            all_done.set()

    def start_next() -> None:
        # A loop, not recursion: rows past the deadline finish here without a request.
        while True:
            with lock:
                index = state["next"]
                if index >= len(rows):
                    return
                state["next"] += 1
            timeout = deadline.timeout(request_timeout)
            if timeout < MIN_CALL_SECONDS:
                finish(index, DeadlineReachedError("not sent: the invocation's deadline came first"))
                continue
            try:
                future = session.execute_async(statement, rows[index], timeout=timeout)
            except Exception as error:  # the driver refused to send it (shut down, no connection)
                finish(index, error)
                continue
            future.add_callbacks(
                callback=_done, callback_args=(index,), errback=_failed, errback_args=(index,)
            )
            return

    def _done(_result: Any, index: int) -> None:
        finish(index, None)
        start_next()

    def _failed(error: BaseException, index: int) -> None:
        finish(index, error)
        start_next()

    if not rows:
        return outcomes
    for _ in range(min(concurrency, len(rows))):
        start_next()
    # Every request ends by its own timeout; the margin covers the driver's timer resolution.
    if not all_done.wait(deadline.remaining() + 1.0):
        with lock:
            late = [index for index, done in enumerate(finished) if not done]
            for index in late:
                finished[index] = True
                outcomes[index] = DeadlineReachedError("no answer by the invocation's deadline")
        logger.warning("requests still running past the deadline", extra={"requests": len(late)})
    with lock:
        return list(outcomes)
