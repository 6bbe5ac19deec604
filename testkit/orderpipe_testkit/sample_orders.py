"""Valid, varied sample orders: one factory for the tests, drills, load generator and benchmarks.

Deterministic by seed (or by a `random.Random` the caller owns), with prices as exact decimal
strings, some of which a binary float cannot hold.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from orderpipe_common.envelope import wrap
from orderpipe_common.model import Order, OrderRequest

CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF")


def order_payload(
    seed: int | random.Random = 0,
    *,
    items: int | tuple[int, int] | None = None,
    with_address: bool | None = None,
    customer_prefix: str = "cust",
) -> dict[str, Any]:
    """A producer's order body: `items` is an exact count or a (fewest, most) range (default 1-5);
    the address and client reference are present at random unless `with_address` says."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    fewest, most = (items, items) if isinstance(items, int) else items or (1, 5)
    payload: dict[str, Any] = {
        "customer_id": f"{customer_prefix}-{rng.randint(1, 100_000)}",
        "currency": rng.choice(CURRENCIES),
        "items": [
            {
                "sku": f"SKU-{rng.randint(1, 99_999):05d}",
                "quantity": rng.randint(1, 20),
                "unit_price": str(Decimal(rng.randint(0, 1_000_000)) / 100),
            }
            for _ in range(rng.randint(fewest, most))
        ],
    }
    if with_address if with_address is not None else rng.random() < 0.5:
        payload["shipping_address"] = {
            "name": "Ada Lovelace",
            "line1": f"{rng.randint(1, 200)} Analytical Street",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        }
    if rng.random() < 0.5:
        payload["client_reference"] = f"ref-{rng.randint(1, 1_000_000)}"
    return payload


# The producer of made-up orders (tests, benchmarks, drills that bypass the API).
SAMPLE_PRODUCER = "sample-producer"


def make_order(seed: int = 0, *, producer: str = SAMPLE_PRODUCER, **kwargs: Any) -> Order:
    """An order as ingest accepts it (with a fresh order_id and accepted_at)."""
    return Order.accept(OrderRequest.model_validate(order_payload(seed, **kwargs)), producer=producer)


def make_orders(count: int, *, start: int = 0) -> list[Order]:
    return [make_order(seed) for seed in range(start, start + count)]


def message_body(order: Order) -> str:
    """The queue message ingest would send for `order`."""
    return wrap(order)
