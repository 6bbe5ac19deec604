"""Order factories for tests: varied, valid orders (and their queue messages)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from orderpipe_common.envelope import wrap
from orderpipe_common.model import Order, OrderRequest


def order_payload(
    seed: int = 0, *, items: int | None = None, with_address: bool | None = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    item_count = items if items is not None else rng.randint(1, 5)
    payload: dict[str, Any] = {
        "customer_id": f"cust-{rng.randint(1, 10_000)}",
        "currency": rng.choice(["EUR", "USD", "GBP", "JPY"]),
        "items": [
            {
                "sku": f"SKU-{rng.randint(1, 99_999):05d}",
                "quantity": rng.randint(1, 20),
                # Prices as strings: exact decimals with 0-2 places, some that floats can't hold.
                "unit_price": str(Decimal(rng.randint(0, 1_000_000)) / 100),
            }
            for _ in range(item_count)
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
        payload["client_reference"] = f"ref-{seed}"
    return payload


def make_order(seed: int = 0, **kwargs: Any) -> Order:
    return Order.accept(OrderRequest.model_validate(order_payload(seed, **kwargs)))


def make_orders(count: int, *, start: int = 0) -> list[Order]:
    return [make_order(seed) for seed in range(start, start + count)]


def message_body(order: Order) -> str:
    return wrap(order)
