"""Cache-aside read of one order: the domain side, free of API Gateway event shapes."""

from __future__ import annotations

import time
import uuid

from orderpipe_common.model import Order
from orderpipe_common.observability import MetricUnit, logger, metrics
from orderpipe_reader.cache import CacheUnavailableError, OrderCache
from orderpipe_reader.store import OrderSource


def read_order(order_id: uuid.UUID, *, cache: OrderCache, source: OrderSource) -> Order | None:
    """The order, from the cache when it holds it, else from Cassandra (then cached).

    None when Cassandra does not have it (yet): not cached, so the next poll looks again.
    Raises StoreUnavailableError when it is not cached and Cassandra cannot answer.
    """
    started = time.perf_counter()
    try:
        cached = cache.get(order_id)
    except CacheUnavailableError:
        logger.warning("cache unavailable on read; reading from cassandra", exc_info=True)
        metrics.add_metric(name="DegradedReads", unit=MetricUnit.Count, value=1)
        cached = None
    else:
        if cached is not None:
            metrics.add_metric(name="CacheHits", unit=MetricUnit.Count, value=1)
            _record_latency(started)
            return cached
        metrics.add_metric(name="CacheMisses", unit=MetricUnit.Count, value=1)

    order = source.find(order_id)
    if order is None:
        metrics.add_metric(name="OrdersNotFound", unit=MetricUnit.Count, value=1)
        _record_latency(started)
        return None
    try:
        cache.put(order)
    except CacheUnavailableError:
        logger.warning("cache unavailable on write-back", exc_info=True)
        metrics.add_metric(name="DegradedReads", unit=MetricUnit.Count, value=1)
    _record_latency(started)
    return order


def _record_latency(started: float) -> None:
    metrics.add_metric(
        name="ReadLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
    )
