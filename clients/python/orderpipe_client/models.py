"""Typed models of what the API takes and answers (docs/openapi.json; a test keeps them in step).

Request models refuse unknown fields, as the server does, so a typo fails before anything is sent.
Answer models ignore fields they do not know, so a newer server does not break an older client.
The server remains the judge of validity: these models carry the shape, not every server rule.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

OrderStatus = Literal["accepted", "rejected", "failed"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LineItem(_Request):
    sku: str
    quantity: int
    unit_price: Decimal


class ShippingAddress(_Request):
    name: str
    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str
    country: str


class OrderRequest(_Request):
    """An order as a producer sends it (`POST /orders`, or one element of `POST /orders/batch`)."""

    customer_id: str
    items: list[LineItem]
    currency: str
    shipping_address: ShippingAddress | None = None
    client_reference: str | None = None


class StoredLineItem(_Answer):
    """A line item of a stored order (LineItem in the document; unknown fields ignored)."""

    sku: str
    quantity: int
    unit_price: Decimal


class StoredShippingAddress(_Answer):
    """The address of a stored order (ShippingAddress in the document; unknown fields ignored)."""

    name: str
    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str
    country: str


class Order(_Answer):
    """A stored order, as `GET /orders/{order_id}` answers it."""

    customer_id: str
    items: list[StoredLineItem]
    currency: str
    shipping_address: StoredShippingAddress | None = None
    client_reference: str | None = None
    order_id: uuid.UUID
    accepted_at: datetime
    # The producer that posted it (its authenticated identity); the API always answers it.
    producer: str | None = None


class Accepted(_Answer):
    """`202` to `POST /orders`: the order is queued, not yet stored (OrderAccepted in the document)."""

    order_id: uuid.UUID
    status: Literal["accepted"] = "accepted"


class FieldError(_Answer):
    """One invalid field: a dotted path into the order (`items.0.quantity`), or `body`."""

    field: str
    message: str
    type: str


class BatchItemResult(_Answer):
    """The fate of the order at `index` of a posted batch."""

    index: int
    status: OrderStatus
    order_id: uuid.UUID | None = None
    errors: list[FieldError] | None = None


class BatchAccepted(_Answer):
    """`202` to `POST /orders/batch`: one result per posted order, in the posted order."""

    accepted: int
    rejected: int
    failed: int
    results: list[BatchItemResult]


class ErrorDetail(_Answer):
    code: str
    message: str
    fields: list[FieldError] | None = None


class ErrorResponse(_Answer):
    """The body of every error answer of the functions: `{"error": {"code", "message", "fields"?}}`."""

    error: ErrorDetail


@dataclass(frozen=True)
class OrderOutcome:
    """What became of one submitted order.

    - `accepted`: queued under `order_id` (stored shortly after; see `wait_until_readable`).
    - `rejected`: the server (or the client, for input that is not an order at all) refused it;
      `errors` names each field. Sending it again unchanged will not help.
    - `failed`: not accepted within the retry budget (the service was unavailable, or the connection
      kept failing); `message` says why. Sending the same request again is safe.

    `idempotency_key` is the key of the request that settled the outcome (for a batch, the batch's).
    """

    index: int
    status: OrderStatus
    idempotency_key: str
    order_id: uuid.UUID | None = None
    errors: tuple[FieldError, ...] = field(default_factory=tuple)
    message: str | None = None
