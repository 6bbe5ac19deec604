"""The order contract: one pydantic v2 model shared by every function.

It is the single source of the schema: the OpenAPI document is generated from it and the Cassandra
table (functions/schema) stores exactly its fields.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import PydanticCustomError, PydanticKnownError

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
    if moment.tzinfo is not UTC:  # already UTC: astimezone would only copy it
        moment = moment.astimezone(UTC)
    sub_millisecond = moment.microsecond % 1000
    return moment.replace(microsecond=moment.microsecond - sub_millisecond) if sub_millisecond else moment


# A UUID as text: the hyphenated 8-4-4-4-12 form, as order ids are written and read.
UUID_TEXT_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# A price sent as text: plain digits, at most 10 before the point and 2 after (no sign, exponent,
# spaces or underscores, which Python's Decimal() would also take). The OpenAPI document states it.
PRICE_TEXT_PATTERN = (
    rf"^[0-9]{{1,{PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES}}}(\.[0-9]{{1,{PRICE_DECIMAL_PLACES}}})?$"
)
MAX_UNIT_PRICE = (
    Decimal(10) ** (PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES) - Decimal(10) ** -PRICE_DECIMAL_PLACES
)
_PRICE_TEXT = re.compile(PRICE_TEXT_PATTERN)
_PRICE_STEP = Decimal(10) ** -PRICE_DECIMAL_PLACES
# The bounds as pydantic's own `ge`/`le` errors name them (their context holds the repr).
_PRICE_GE_TEXT = repr(Decimal("0"))
_PRICE_LE_TEXT = repr(MAX_UNIT_PRICE)


def _price_text_is_plain(value: Any) -> Any:
    if isinstance(value, str) and not _PRICE_TEXT.fullmatch(value):
        raise PydanticCustomError(
            "decimal_text",
            'a price as text is digits with at most {places} decimal places, e.g. "19.99"',
            {"places": PRICE_DECIMAL_PLACES},
        )
    return value


def _digits_places_exponent(price: Decimal) -> tuple[int, int, int]:
    # Digits and places as pydantic counts them for max_digits / decimal_places: 1.230 has 4 digits
    # and 3 places, 12E+2 has 4 digits and 0 places, 0.0123 has 4 digits and 4 places.
    _, digits, exponent = price.as_tuple()
    assert isinstance(exponent, int)  # finite: the decimal schema refuses NaN and infinities
    if exponent >= 0:
        return len(digits) + exponent, 0, exponent
    return max(len(digits), -exponent), -exponent, exponent


def _valid_plain_price(price: Decimal) -> Decimal:
    """What `Field(ge=0, le=MAX_UNIT_PRICE, max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)`
    checks, in pydantic's order and with its errors, then the price's plain spelling.

    In one Python call: after a validator function pydantic runs those constraints as five Python
    validators, which were a quarter of validating an order (docs/benchmarks.md, ingest_cpu).
    """
    if not price >= 0:
        raise PydanticKnownError("greater_than_equal", {"ge": _PRICE_GE_TEXT})
    if not price <= MAX_UNIT_PRICE:
        raise PydanticKnownError("less_than_equal", {"le": _PRICE_LE_TEXT})
    digits, places, exponent = _digits_places_exponent(price)
    if digits > PRICE_MAX_DIGITS and _digits_places_exponent(price.normalize())[0] > PRICE_MAX_DIGITS:
        raise PydanticKnownError("decimal_max_digits", {"max_digits": PRICE_MAX_DIGITS})
    if places > PRICE_DECIMAL_PLACES and _digits_places_exponent(price.normalize())[1] > PRICE_DECIMAL_PLACES:
        raise PydanticKnownError("decimal_max_places", {"decimal_places": PRICE_DECIMAL_PLACES})
    # One spelling per amount in the stored order and in answers, the one the document's pattern
    # shows: a JSON number 1E+2 is 100, 1.500 is 1.50, -0 is 0.
    if exponent > 0:
        price = price.quantize(Decimal(1))
    elif places > PRICE_DECIMAL_PLACES:
        price = price.quantize(_PRICE_STEP)
    return price.copy_abs() if price.is_zero() else price


def _price(value: Any, parse: ValidatorFunctionWrapHandler) -> Decimal:
    """A price sent as text or as a JSON number (`parse` is pydantic's decimal validation)."""
    if isinstance(value, str):
        _price_text_is_plain(value)
        # The pattern admits only prices within every bound, already in their plain spelling, that
        # Decimal() reads exactly as pydantic would (it calls the same constructor).
        return Decimal(value)
    return _valid_plain_price(parse(value))


def _integral_number(value: Any) -> Any:
    # JSON Schema counts 2.0 and 2e0 as integers; the body's numbers with a fraction or an exponent
    # arrive as Decimal. Only small ones are converted (int() of 1e999999999 would take minutes).
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < 19
        and value == value.to_integral_value()
    ):
        return int(value)
    return value


# Free text is any Unicode text: every character is carried to the store as sent (the queue
# envelope escapes what SQS refuses). An escaped lone surrogate ("\ud800") is not a character: the
# string is refused (pydantic's `string_unicode`).
Text = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=200)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
CurrencyCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_known_currency),
    Field(description="ISO 4217 alphabetic code", json_schema_extra={"enum": sorted(ISO_4217_CODES)}),
]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# The bounds are checked by `_price` and documented by the JSON schema below (the le bound
# matters: max_digits alone lets 1E+10 through, digits are counted normalized).
UnitPrice = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    WrapValidator(_price),
    Field(
        description="Price of one unit, at most 2 decimal places: a JSON number or a string of digits "
        '("19.99"). Answers give it as a string.',
    ),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "number",
                    "minimum": 0,
                    "maximum": float(MAX_UNIT_PRICE),
                    "multipleOf": float(_PRICE_STEP),
                },
                {"type": "string", "pattern": PRICE_TEXT_PATTERN},
            ]
        }
    ),
]
Quantity = Annotated[
    int, Field(ge=1, le=MAX_QUANTITY_PER_LINE, strict=True), BeforeValidator(_integral_number)
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
    quantity: Quantity
    unit_price: UnitPrice


class ShippingAddress(_Strict):
    name: Text
    line1: Text
    line2: Text | None = None
    city: Text
    region: Text | None = None
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    country: CountryCode = Field(description="ISO 3166-1 alpha-2 country code")


# The example the OpenAPI document shows (and tools such as schemathesis and Swagger UI send).
EXAMPLE_ORDER_REQUEST: dict[str, JsonValue] = {
    "customer_id": "cust-42",
    "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "19.99"}],
    "currency": "EUR",
    "shipping_address": {
        "name": "Ada Lovelace",
        "line1": "12 Analytical Street",
        "city": "London",
        "postal_code": "N1 9GU",
        "country": "GB",
    },
    "client_reference": "po-2026-0042",
}


class OrderRequest(_Strict):
    """What a producer posts."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ORDER_REQUEST]})

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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE_ORDER_REQUEST,
                    "order_id": "0b6d0a4e-8a55-4d6b-9f0e-2f3a6c1d9e7b",
                    "accepted_at": "2026-11-24T09:30:15.123000Z",
                }
            ]
        }
    )

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

    @classmethod
    def accept_payload(
        cls,
        payload: Any,
        *,
        producer: str,
        now: datetime | None = None,
        order_id: uuid.UUID | None = None,
    ) -> Order:
        """`accept(OrderRequest.model_validate(payload), ...)`, validating the payload once.

        Raises OrderRequest's ValidationError (what the producer sent is answered as a request).
        """
        # A JSON object that names no server-assigned field is validated as the order it becomes,
        # server fields added (building the order from a validated request cost nearly as much as
        # validating it); anything else, or any error, goes the long way for OrderRequest's errors.
        if type(payload) is dict and _SERVER_ASSIGNED.isdisjoint(payload):
            try:
                return cls.model_validate(
                    {
                        **payload,
                        "order_id": order_id or uuid.uuid4(),
                        "accepted_at": now or datetime.now(UTC),
                        "producer": producer,
                    }
                )
            except ValidationError:
                pass
        return cls.accept(OrderRequest.model_validate(payload), producer=producer, now=now, order_id=order_id)

    def total(self) -> Decimal:
        return sum((item.unit_price * item.quantity for item in self.items), Decimal("0"))


# What the server adds to a request to make it an order (a producer may not send them).
_SERVER_ASSIGNED = frozenset(Order.model_fields) - frozenset(OrderRequest.model_fields)
