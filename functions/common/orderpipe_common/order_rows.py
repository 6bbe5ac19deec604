"""How an order maps to a row of the `orders` table, and back: one place for writer and reader.

Line items and the address are Cassandra user-defined types. The driver serializes a UDT from any
object with attributes of the field names, so the pydantic models are bound as they are.
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime
from typing import Any

from orderpipe_common.model import Order

ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "currency",
    "items",
    "shipping_address",
    "client_reference",
    "accepted_at",
    "producer",
)

INSERT_ORDER_CQL = (
    f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({', '.join('?' for _ in ORDER_COLUMNS)})"
)
SELECT_ORDER_CQL = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE order_id = ?"


_row_values = operator.attrgetter(*ORDER_COLUMNS)


def order_to_row(order: Order) -> tuple[Any, ...]:
    # attrgetter: a fifth of a generator of getattr's CPU, per order written (docs/benchmarks.md)
    row: tuple[Any, ...] = _row_values(order)
    return row


def _udt_as_dict(value: Any) -> dict[str, Any]:
    # The driver returns UDT values as namedtuples.
    return dict(value._asdict())


def order_from_row(row: Any) -> Order:
    accepted_at: datetime = row.accepted_at
    if accepted_at.tzinfo is None:  # the driver returns naive UTC datetimes
        accepted_at = accepted_at.replace(tzinfo=UTC)
    return Order(
        order_id=row.order_id,
        customer_id=row.customer_id,
        currency=row.currency,
        items=[_udt_as_dict(item) for item in row.items or []],
        shipping_address=_udt_as_dict(row.shipping_address) if row.shipping_address else None,
        client_reference=row.client_reference,
        accepted_at=accepted_at,
        producer=row.producer,
    )
