"""Canonical order JSON and deterministic Idempotency-Keys.

Why re-sending is safe: the server derives every order id from the route, the request's
`Idempotency-Key` and its body (and the order's index in a batch). Within its idempotency window it
also replays the first answer and enqueues nothing; after it, the same key and body still give the
same order ids, and the writer stores an id once (an upsert). So a request is safe to send again as
long as its key AND its body are exactly the same as the first time. This module makes both a pure
function of the content:

- the body is the canonical JSON of the order(s): keys sorted, no whitespace, ASCII-only, decimals
  written exactly as given (never through a binary float);
- an order's key is, in order of preference, the caller's explicit key; else one derived from its
  `client_reference` (with its `customer_id`); else the SHA-256 of its canonical JSON;
- a batch's key is the SHA-256 of its orders' keys and bodies, in order: the same orders in the same
  order always make the same batch request, while any other grouping is another request (with other
  order ids). Callers that may re-send after a crash must therefore re-send the same groups.

Every derived key mixes in a namespace (empty by default). Producers need none to keep apart: the
server scopes keys, and the ids it derives, to the producer of the credential.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

MAX_KEY_LENGTH = 255
KEY_VERSION = "opc1"  # bump only with a new derivation; old and new keys must never collide


class InvalidIdempotencyKeyError(ValueError):
    """An explicit key the server would refuse (it must be 1-255 printable characters)."""


def canonical_json(value: Any) -> str:
    """The one JSON text for `value`: sorted keys, no spaces, ASCII, Decimals exact, no NaN/Infinity."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, (bool, str)):
        out.append(json.dumps(value))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        out.append(json.dumps(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for position, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if position:
                out.append(",")
            out.append(json.dumps(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def order_json_value(order: Any) -> Any:
    """An order as plain JSON data: a pydantic model is dumped (None fields left out), a dict is kept."""
    if isinstance(order, BaseModel):
        return order.model_dump(mode="json", exclude_none=True)
    return order


def validate_explicit_key(key: str) -> str:
    if (
        not key
        or len(key) > MAX_KEY_LENGTH
        or not key.isascii()
        or not key.isprintable()
        or key != key.strip()
    ):
        raise InvalidIdempotencyKeyError(
            f"an Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters without "
            "surrounding spaces"
        )
    return key


def _digest(namespace: str, kind: str, *material: str) -> str:
    hasher = hashlib.sha256()
    for part in (KEY_VERSION, namespace, kind, *material):
        encoded = part.encode("utf-8", "surrogatepass")
        # Length-prefixed, so that no two different inputs hash the same concatenation.
        hasher.update(len(encoded).to_bytes(8, "big"))
        hasher.update(encoded)
    return hasher.hexdigest()


def order_key(order: Any, *, body: str, namespace: str = "", explicit: str | None = None) -> str:
    """The Idempotency-Key of one order (`body` is its canonical JSON)."""
    if explicit is not None:
        return validate_explicit_key(explicit)
    if isinstance(order, Mapping):
        reference, customer = order.get("client_reference"), order.get("customer_id")
        if isinstance(reference, str) and reference and isinstance(customer, str):
            return f"{KEY_VERSION}-r-{_digest(namespace, 'ref', customer, reference)}"
    return f"{KEY_VERSION}-c-{_digest(namespace, 'content', body)}"


def batch_key(order_keys: Sequence[str], bodies: Sequence[str], *, namespace: str = "") -> str:
    """The Idempotency-Key of a batch request: a function of its orders' keys and bodies, in order."""
    if len(order_keys) != len(bodies):
        raise ValueError("one key per body")
    material = [
        f"{key}\n{hashlib.sha256(body.encode()).hexdigest()}"
        for key, body in zip(order_keys, bodies, strict=True)
    ]
    return f"{KEY_VERSION}-b-{_digest(namespace, 'batch', *material)}"


def batch_body(bodies: Sequence[str]) -> str:
    """The batch request's body from its orders' canonical JSON (itself canonical JSON)."""
    return "[" + ",".join(bodies) + "]"
