"""Cache-aside read of one order for one caller: the domain side, free of API Gateway event shapes.

An order is the producer's that posted it (orders stored before producers existed: the legacy
producer's). Another producer is answered exactly as for an unknown order (None: the handler's 404),
so ids cannot be probed for existence; only a read-all caller reads every order. The owner is checked
on a cache hit as on a Cassandra read, and a denied read never fills the cache.
"""

from __future__ import annotations

import time
import uuid

from orderpipe_common.deadlines import Deadline
from orderpipe_common.identity import Caller
from orderpipe_common.model import Order
from orderpipe_common.observability import MetricUnit, logger, metrics
from orderpipe_reader.cache import CacheUnavailableError, OrderCache
from orderpipe_reader.store import OrderSource


def read_order(
    order_id: uuid.UUID,
    *,
    caller: Caller,
    legacy_producer: str,
    cache: OrderCache,
    source: OrderSource,
    deadline: Deadline,
) -> Order | None:
    """The order if `caller` may read it, from the cache when it holds it, else from Cassandra (then
    cached).

    None when Cassandra does not have it (yet) or it is another producer's: not cached, so the next
    poll looks again. Raises StoreUnavailableError when it is not cached and Cassandra cannot answer
    before `deadline`.
    """
    started = time.perf_counter()
    order, from_cache = _find(order_id, cache=cache, source=source, deadline=deadline)
    if order is None:
        metrics.add_metric(name="OrdersNotFound", unit=MetricUnit.Count, value=1)
        _record_latency(started)
        return None
    if order.producer is None:
        order = order.model_copy(update={"producer": legacy_producer})
    if order.producer != caller.producer and not caller.read_all:
        # Audit: who asked for whose order; the caller gets the same 404 as for an unknown id.
        logger.warning("read denied", extra={**caller.audit(), "order_id": str(order_id)})
        metrics.add_metric(name="ReadsDenied", unit=MetricUnit.Count, value=1)
        _record_latency(started)
        return None
    if not from_cache:
        try:
            cache.put(order, deadline)
        except CacheUnavailableError:
            logger.warning("cache unavailable on write-back", exc_info=True)
            metrics.add_metric(name="DegradedReads", unit=MetricUnit.Count, value=1)
    _record_latency(started)
    return order


def _find(
    order_id: uuid.UUID, *, cache: OrderCache, source: OrderSource, deadline: Deadline
) -> tuple[Order | None, bool]:
    """(the order or None, whether it came from the cache)."""
    try:
        cached = cache.get(order_id, deadline)
    except CacheUnavailableError:
        logger.warning("cache unavailable on read; reading from cassandra", exc_info=True)
        metrics.add_metric(name="DegradedReads", unit=MetricUnit.Count, value=1)
        cached = None
    else:
        if cached is not None:
            metrics.add_metric(name="CacheHits", unit=MetricUnit.Count, value=1)
            return cached, True
        metrics.add_metric(name="CacheMisses", unit=MetricUnit.Count, value=1)
    return source.find(order_id, deadline), False


def _record_latency(started: float) -> None:
    metrics.add_metric(
        name="ReadLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
    )
