"""Order bodies for the load generator, by size profile; generated once, then reused as bytes.

Producing a fresh random order per request would cost the generator more CPU than sending it; a
pool of distinct, valid bodies cycled round-robin is enough (the server assigns each a new id).
"""

from __future__ import annotations

import json
import random
from typing import Any

PROFILES: dict[str, tuple[int, int]] = {
    # name: (fewest, most) line items per order
    "small": (1, 1),
    "mixed": (1, 5),
    "large": (20, 50),
}
POOL_SIZE = 256
CURRENCIES = ("EUR", "USD", "GBP", "JPY", "CHF")


def order_payload(rng: random.Random, profile: str) -> dict[str, Any]:
    fewest, most = PROFILES[profile]
    payload: dict[str, Any] = {
        "customer_id": f"load-{rng.randint(1, 100_000)}",
        "currency": rng.choice(CURRENCIES),
        "items": [
            {
                "sku": f"SKU-{rng.randint(1, 99_999):05d}",
                "quantity": rng.randint(1, 20),
                "unit_price": f"{rng.randint(0, 1_000_000) / 100:.2f}",
            }
            for _ in range(rng.randint(fewest, most))
        ],
    }
    if profile == "large" or (profile == "mixed" and rng.random() < 0.5):
        payload["shipping_address"] = {
            "name": "Ada Lovelace",
            "line1": f"{rng.randint(1, 200)} Analytical Street",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
        }
    return payload


class BodyPool:
    """Pre-encoded request bodies: single orders, or JSON arrays of `batch_size` orders."""

    def __init__(self, *, profile: str, batch_size: int, seed: int = 7, size: int = POOL_SIZE) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown order profile {profile!r}; use one of {', '.join(PROFILES)}")
        rng = random.Random(seed)
        orders = [order_payload(rng, profile) for _ in range(size)]
        self.batch_size = batch_size
        if batch_size <= 1:
            self._bodies = [json.dumps(o, separators=(",", ":")).encode() for o in orders]
        else:
            self._bodies = [
                json.dumps(
                    [orders[(i + j) % size] for j in range(batch_size)], separators=(",", ":")
                ).encode()
                for i in range(size)
            ]
        self.mean_bytes = sum(map(len, self._bodies)) / len(self._bodies)

    def body(self, index: int) -> bytes:
        return self._bodies[index % len(self._bodies)]
