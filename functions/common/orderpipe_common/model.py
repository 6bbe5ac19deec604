"""The order contract: one pydantic v2 model shared by every function.

It is the single source of the schema: the OpenAPI document is generated from it and the Cassandra
table (functions/schema) stores exactly its fields.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from orderpipe_common.currencies import ISO_4217_CODES
from orderpipe_common.identity import PRODUCER_PATTERN

# Bounds a producer can rely on (documented in the README and the OpenAPI document).
MAX_LINE_ITEMS_PER_ORDER = 100
MAX_QUANTITY_PER_LINE = 1_000_000
MAX_ORDER_BODY_BYTES = 32 * 1024
MAX_ORDERS_PER_BATCH = 100
MAX_BATCH_BODY_BYTES = 1024 * 1024
# 10 digits before the point, 2 after: the largest unit price is 9,999,999,999.99.
PRICE_MAX_DIGITS = 12
PRICE_DECIMAL_PLACES = 2


def _known_currency(code: str) -> str:
    if code not in ISO_4217_CODES:
        raise ValueError(f"'{code}' is not an ISO 4217 currency code")
    return code


def _drop_sub_millisecond(moment: datetime) -> datetime:
    # Cassandra's timestamp type holds milliseconds: truncating here keeps the order identical
    # whether it is read back from the cache or from Cassandra.
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


Text = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=200)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_known_currency)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
UnitPrice = Annotated[
    Decimal,
    Field(
        ge=Decimal("0"),
        max_digits=PRICE_MAX_DIGITS,
        decimal_places=PRICE_DECIMAL_PLACES,
        allow_inf_nan=False,
        description="Price of one unit as a decimal (JSON number or string), at most 2 decimal places.",
    ),
]
UtcMillis = Annotated[datetime, AfterValidator(_drop_sub_millisecond)]


class _Strict(BaseModel):
    # One JSON schema per model in the OpenAPI document, for requests and responses alike: the
    # validation form (a price is a number or a string) also describes what we answer (a string).
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=False, json_schema_mode_override="validation"
    )


class LineItem(_Strict):
    sku: Identifier
    quantity: int = Field(ge=1, le=MAX_QUANTITY_PER_LINE, strict=True)
    unit_price: UnitPrice


class ShippingAddress(_Strict):
    name: Text
    line1: Text
    line2: Text | None = None
    city: Text
    region: Text | None = None
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    country: CountryCode = Field(description="ISO 3166-1 alpha-2 country code")


class OrderRequest(_Strict):
    """What a producer posts."""

    customer_id: Identifier
    items: list[LineItem] = Field(min_length=1, max_length=MAX_LINE_ITEMS_PER_ORDER)
    currency: CurrencyCode
    shipping_address: ShippingAddress | None = None
    client_reference: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


ProducerId = Annotated[str, StringConstraints(pattern=PRODUCER_PATTERN)]


class Order(OrderRequest):
    """An accepted order: the request plus what the server assigned.

    `producer` is the authenticated producer that posted it (from the gateway, never from the body:
    an `OrderRequest` with a `producer` field is refused). None only on a message of an older
    ingest (envelope v1); the reader answers such orders as the configured legacy producer's.
    """

    order_id: uuid.UUID
    accepted_at: UtcMillis
    producer: ProducerId | None = Field(
        default=None, description="The producer that posted the order (its authenticated identity)."
    )

    @classmethod
    def accept(
        cls,
        request: OrderRequest,
        *,
        producer: str,
        now: datetime | None = None,
        order_id: uuid.UUID | None = None,
    ) -> Order:
        # The request is already validated (and frozen): building the order from its fields as they
        # are, rather than validating them a second time, is most of the per-order cost it saves.
        return cls.model_construct(
            **{name: getattr(request, name) for name in OrderRequest.model_fields},
            order_id=order_id or uuid.uuid4(),
            accepted_at=_drop_sub_millisecond(now or datetime.now(UTC)),
            producer=producer,
        )

    def total(self) -> Decimal:
        return sum((item.unit_price * item.quantity for item in self.items), Decimal("0"))
