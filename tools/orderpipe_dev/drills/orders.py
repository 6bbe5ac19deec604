"""Valid orders for the drills (varied, deterministic by seed), and their queue messages."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from orderpipe_common.envelope import wrap
from orderpipe_common.model import Order, OrderRequest


def order_payload(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    return {
        "customer_id": f"drill-{rng.randint(1, 10_000)}",
        "currency": rng.choice(["EUR", "USD", "GBP", "JPY"]),
        "items": [
            {
                "sku": f"SKU-{rng.randint(1, 99_999):05d}",
                "quantity": rng.randint(1, 20),
                "unit_price": str(Decimal(rng.randint(0, 1_000_000)) / 100),
            }
            for _ in range(rng.randint(1, 4))
        ],
        "client_reference": f"drill-{seed}",
    }


def accepted_order(seed: int) -> Order:
    """An order as ingest would accept it (with its order_id)."""
    return Order.accept(OrderRequest.model_validate(order_payload(seed)))


def message(order: Order) -> str:
    return wrap(order)
