"""Order bodies for the load generator, by size profile; generated once, then reused as bytes.

Producing a fresh random order per request would cost the generator more CPU than sending it; a
pool of distinct, valid bodies cycled round-robin is enough (the server assigns each a new id).
"""

from __future__ import annotations

import json
import random
from typing import Any

from orderpipe_testkit import sample_orders

PROFILES: dict[str, tuple[int, int]] = {
    # name: (fewest, most) line items per order
    "small": (1, 1),
    "mixed": (1, 5),
    "large": (20, 50),
}
POOL_SIZE = 256


def order_payload(rng: random.Random, profile: str) -> dict[str, Any]:
    """An order body of the given size profile (`small`, `mixed`, `large`)."""
    with_address = {"small": False, "large": True}.get(profile)  # mixed: at random
    return sample_orders.order_payload(
        rng, items=PROFILES[profile], with_address=with_address, customer_prefix="load"
    )


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
