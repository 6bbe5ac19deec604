"""Writing a batch of orders: the domain side, free of SQS and Lambda event shapes."""

from __future__ import annotations

import time
from collections.abc import Sequence

from orderpipe_common.deadlines import Deadline
from orderpipe_common.model import Order
from orderpipe_common.observability import MetricUnit, logger, metrics
from orderpipe_writer.store import OrderStore, Outcomes


def write_orders(store: OrderStore, orders: Sequence[Order], deadline: Deadline) -> Outcomes:
    """Store the orders; an outcome per order (None: stored), all known by `deadline`."""
    if not orders:
        return []
    started = time.perf_counter()
    outcomes = store.insert_many(orders, deadline)
    elapsed_ms = (time.perf_counter() - started) * 1000
    failed = sum(outcome is not None for outcome in outcomes)
    metrics.add_metric(name="OrdersWritten", unit=MetricUnit.Count, value=len(orders) - failed)
    metrics.add_metric(name="OrdersFailed", unit=MetricUnit.Count, value=failed)
    metrics.add_metric(name="WriteLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    if failed:
        first_error = next(o for o in outcomes if o is not None)
        logger.warning(
            "orders not written",
            extra={"failed": failed, "error": f"{type(first_error).__name__}: {first_error}"},
        )
    return outcomes
