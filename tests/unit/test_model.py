"""The order contract: what a producer may send, and what the queue carries."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from orderpipe_common.envelope import (
    CURRENT_SCHEMA_VERSION,
    OrderEnvelopeV2,
    UnreadableMessageError,
    ascii_json,
    parse_envelope,
    wrap,
)
from orderpipe_common.model import (
    EXAMPLE_ORDER_REQUEST,
    MAX_LINE_ITEMS_PER_ORDER,
    MAX_ORDER_BODY_BYTES,
    MAX_QUANTITY_PER_LINE,
    Order,
    OrderRequest,
)


def valid_payload(**changes: Any) -> dict[str, Any]:
    # The document's example order: a complete one (every optional field set).
    payload: dict[str, Any] = copy.deepcopy(EXAMPLE_ORDER_REQUEST)
    payload.update(changes)
    return payload


def with_item(**item_changes: Any) -> dict[str, Any]:
    return valid_payload(items=[{"sku": "SKU-1", "quantity": 1, "unit_price": "1.00", **item_changes}])


def invalid_fields(payload: Any) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        OrderRequest.model_validate(payload)
    return {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}


def test_a_complete_order_is_valid() -> None:
    request = OrderRequest.model_validate(valid_payload())
    assert request.customer_id == "cust-42"
    assert request.items[0].unit_price == Decimal("19.99")
    assert request.shipping_address is not None
    assert request.shipping_address.country == "GB"


def test_a_minimal_order_is_valid() -> None:
    request = OrderRequest.model_validate(valid_payload(shipping_address=None, client_reference=None))
    assert request.shipping_address is None
    assert request.client_reference is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "has space"}, "customer_id"),
        ({"customer_id": "x" * 65}, "customer_id"),
        ({"customer_id": 42}, "customer_id"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"items": []}, "items"),
        ({"client_reference": ""}, "client_reference"),
        ({"client_reference": "r" * 65}, "client_reference"),
    ],
)
def test_each_invalid_top_level_field_is_named(changes: dict[str, Any], field: str) -> None:
    assert invalid_fields(valid_payload(**changes)) == {field}


@pytest.mark.parametrize("missing", ["customer_id", "items", "currency"])
def test_each_missing_required_field_is_named(missing: str) -> None:
    payload = valid_payload()
    del payload[missing]
    assert invalid_fields(payload) == {missing}


@pytest.mark.parametrize(
    ("item_changes", "field"),
    [
        ({"sku": ""}, "items.0.sku"),
        ({"sku": "-leading-dash"}, "items.0.sku"),
        ({"sku": "S" * 65}, "items.0.sku"),
        ({"quantity": 0}, "items.0.quantity"),
        ({"quantity": -1}, "items.0.quantity"),
        ({"quantity": MAX_QUANTITY_PER_LINE + 1}, "items.0.quantity"),
        ({"quantity": 1.5}, "items.0.quantity"),
        ({"quantity": "2"}, "items.0.quantity"),
        ({"quantity": True}, "items.0.quantity"),
        ({"unit_price": "-0.01"}, "items.0.unit_price"),
        ({"unit_price": "1.001"}, "items.0.unit_price"),
        ({"unit_price": "NaN"}, "items.0.unit_price"),
        ({"unit_price": "Infinity"}, "items.0.unit_price"),
        ({"unit_price": "-Infinity"}, "items.0.unit_price"),
        ({"unit_price": Decimal("NaN")}, "items.0.unit_price"),
        ({"unit_price": Decimal("Infinity")}, "items.0.unit_price"),
        ({"unit_price": "10000000000.00"}, "items.0.unit_price"),
        ({"unit_price": Decimal("1E+400")}, "items.0.unit_price"),
        ({"unit_price": "twelve"}, "items.0.unit_price"),
        ({"colour": "red"}, "items.0.colour"),
    ],
)
def test_each_invalid_line_item_field_is_named(item_changes: dict[str, Any], field: str) -> None:
    assert invalid_fields(with_item(**item_changes)) == {field}


@pytest.mark.parametrize(
    ("address_changes", "field"),
    [
        ({"country": "gb"}, "shipping_address.country"),
        ({"country": "GBR"}, "shipping_address.country"),
        ({"name": ""}, "shipping_address.name"),
        ({"line1": "x" * 201}, "shipping_address.line1"),
        ({"postal_code": "1" * 21}, "shipping_address.postal_code"),
        ({"planet": "Earth"}, "shipping_address.planet"),
    ],
)
def test_each_invalid_address_field_is_named(address_changes: dict[str, Any], field: str) -> None:
    address = {**valid_payload()["shipping_address"], **address_changes}
    assert invalid_fields(valid_payload(shipping_address=address)) == {field}


def test_several_invalid_fields_are_all_named() -> None:
    payload = valid_payload(currency="???", items=[{"sku": "", "quantity": 0, "unit_price": "-1"}])
    assert invalid_fields(payload) == {"currency", "items.0.sku", "items.0.quantity", "items.0.unit_price"}


def test_unknown_top_level_fields_are_rejected() -> None:
    assert invalid_fields(valid_payload(discount_code="FREE")) == {"discount_code"}


def test_server_assigned_fields_cannot_be_sent_by_a_producer() -> None:
    assert invalid_fields(valid_payload(order_id=str(uuid.uuid4()))) == {"order_id"}


def test_item_count_is_bounded() -> None:
    item = {"sku": "SKU-1", "quantity": 1, "unit_price": "1"}
    assert OrderRequest.model_validate(valid_payload(items=[item] * MAX_LINE_ITEMS_PER_ORDER))
    assert invalid_fields(valid_payload(items=[item] * (MAX_LINE_ITEMS_PER_ORDER + 1))) == {"items"}


@pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "GBP", "CHF", "XAU"])
def test_iso_4217_codes_are_accepted(code: str) -> None:
    assert OrderRequest.model_validate(valid_payload(currency=code)).currency == code


@pytest.mark.parametrize("price", ["0", "0.00", "19.99", "9999999999.99", 5, Decimal("0.1")])
def test_prices_within_bounds_are_accepted(price: Any) -> None:
    assert OrderRequest.model_validate(with_item(unit_price=price)).items[0].unit_price == Decimal(str(price))


@pytest.mark.parametrize(
    ("price", "message"),
    [
        (Decimal("1E+10"), "less than or equal to"),
        (Decimal("123456789012.5"), "less than or equal to"),
        (Decimal("9999999999.999"), "less than or equal to"),
        (Decimal("0.001"), "no more than 2 decimal places"),
        (Decimal("-0.01"), "greater than or equal to"),
    ],
)
def test_a_price_out_of_bounds_is_refused_with_the_bound_it_breaks(price: Decimal, message: str) -> None:
    # Given a JSON number price beyond the bounds (a string one is refused by its pattern first)
    body = json.dumps(with_item(unit_price="PRICE")).replace('"PRICE"', str(price))
    # When it is validated, Then the price alone is named, with the bound in words
    with pytest.raises(ValidationError) as refused:
        OrderRequest.model_validate_json(body)
    [error] = refused.value.errors()
    assert error["loc"] == ("items", 0, "unit_price")
    assert message in error["msg"]


def test_prices_stay_exact_decimals() -> None:
    # Given prices that binary floats cannot hold (0.1 + 0.2 != 0.3 as floats)
    request = OrderRequest.model_validate(
        valid_payload(
            items=[
                {"sku": "A", "quantity": 1, "unit_price": "0.10"},
                {"sku": "B", "quantity": 1, "unit_price": "0.20"},
            ]
        )
    )
    order = Order.accept(request, producer="acme")
    # Then the total is exact, and each price keeps its digits through JSON and back
    assert order.total() == Decimal("0.30")
    again = Order.model_validate_json(order.model_dump_json())
    assert [item.unit_price for item in again.items] == [Decimal("0.10"), Decimal("0.20")]
    assert isinstance(again.items[0].unit_price, Decimal)


def test_json_numbers_parsed_as_decimals_are_exact() -> None:
    # The ingest parses JSON with parse_float=Decimal: a JSON number 0.1 stays 0.1
    payload = json.loads(
        '{"customer_id": "c", "currency": "EUR", "items": [{"sku": "A", "quantity": 3, "unit_price": 0.1}]}',
        parse_float=Decimal,
    )
    order = Order.accept(OrderRequest.model_validate(payload), producer="acme")
    assert order.total() == Decimal("0.3")


def test_accepting_assigns_an_id_and_a_utc_time_in_milliseconds() -> None:
    request = OrderRequest.model_validate(valid_payload())
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    order = Order.accept(request, now=moment, producer="acme")
    assert isinstance(order.order_id, uuid.UUID)
    assert order.accepted_at == datetime(2026, 1, 2, 1, 4, 5, 678000, tzinfo=UTC)
    assert Order.accept(request, producer="acme").order_id != order.order_id


def test_the_envelope_round_trips_the_order_exactly() -> None:
    order = Order.accept(OrderRequest.model_validate(valid_payload()), producer="acme")
    body = wrap(order)
    assert json.loads(body)["schema_version"] == CURRENT_SCHEMA_VERSION == 2
    assert parse_envelope(body) == order
    assert json.loads(body)["order"]["producer"] == "acme"
    assert json.loads(body)["order"]["items"][0]["unit_price"] == "19.99"  # a string: no float drift


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "{}",
        '{"schema_version": 99, "order": {}}',
        '{"order": {"customer_id": "c"}}',
    ],
)
def test_unreadable_envelopes_are_refused_with_a_reason(body: str) -> None:
    with pytest.raises(UnreadableMessageError):
        parse_envelope(body)


def test_a_v1_envelope_of_an_older_ingest_is_still_read_with_no_producer() -> None:
    # Given a message as an ingest before producers wrote it (schema 1, no producer field)
    order = Order.accept(OrderRequest.model_validate(valid_payload()), producer="acme")
    old_order = order.model_dump(mode="json", exclude={"producer"})
    body = json.dumps({"schema_version": 1, "order": old_order})
    # When a current writer reads it, Then it is the same order with no producer (read as legacy's)
    assert parse_envelope(body) == order.model_copy(update={"producer": None})


def test_a_v2_envelope_without_its_producer_is_unreadable() -> None:
    order = Order.accept(OrderRequest.model_validate(valid_payload()), producer="acme")
    data = json.loads(wrap(order))
    del data["order"]["producer"]
    with pytest.raises(UnreadableMessageError, match="producer"):
        parse_envelope(json.dumps(data))


def test_an_envelope_with_unknown_fields_is_unreadable() -> None:
    order = Order.accept(OrderRequest.model_validate(valid_payload()), producer="acme")
    data = json.loads(wrap(order))
    data["extra"] = 1
    with pytest.raises(UnreadableMessageError, match="extra"):
        parse_envelope(json.dumps(data))


def test_an_accepted_order_equals_the_same_order_validated_from_scratch() -> None:
    # Given a validated request and a moment with sub-millisecond precision
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from orderpipe_common.model import Order, OrderRequest
    from orderpipe_testkit.sample_orders import order_payload

    request = OrderRequest.model_validate(order_payload(21, with_address=True))
    moment = datetime(2026, 11, 24, 7, 30, 15, 123_987, tzinfo=ZoneInfo("Europe/Paris"))
    # When the server accepts it
    order = Order.accept(request, now=moment, producer="acme")
    # Then it is exactly what full validation of the same fields gives (UTC, milliseconds)
    revalidated = Order.model_validate(order.model_dump())
    assert order == revalidated
    assert order.accepted_at == datetime(2026, 11, 24, 6, 30, 15, 123_000, tzinfo=UTC)
    assert Order.model_validate_json(order.model_dump_json()) == order


# -- characters: carried as sent, or refused naming the field -----------------------------------------

FREE_TEXT_FIELDS = [
    ("client_reference",),
    ("shipping_address", "name"),
    ("shipping_address", "line1"),
    ("shipping_address", "line2"),
    ("shipping_address", "city"),
    ("shipping_address", "region"),
    ("shipping_address", "postal_code"),
]
# Characters SQS refuses in a message body (it takes #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
# #x10000-#x10FFFF), and some it takes that are easy to mangle.
SQS_REFUSED = "\x00\x01\x08\x0b\x0c\x0e\x1f\ufffe\uffff"
AWKWARD = "\t\n\r\x7f\u2028\u202e\ufeff\U0001f4a5\U0010ffff"


def sqs_takes(body: str) -> bool:
    return all(
        c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD or ord(c) >= 0x10000
        for c in body
    )


def with_text(path: tuple[str, ...], text: str) -> dict[str, Any]:
    payload = valid_payload()
    target = payload
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = text
    return payload


@pytest.mark.parametrize("path", FREE_TEXT_FIELDS, ids=".".join)
def test_every_character_of_free_text_reaches_the_queue_and_comes_back_the_same(
    path: tuple[str, ...],
) -> None:
    # Given an order whose free-text field holds the characters SQS refuses and other awkward ones
    text = "x" + SQS_REFUSED + AWKWARD
    order = Order.accept(OrderRequest.model_validate(with_text(path, text)), producer="acme")
    # When it is wrapped for the queue
    body = wrap(order)
    # Then the message body is ASCII that SQS takes, and the writer reads back the same text
    assert body.isascii() and sqs_takes(body)
    assert parse_envelope(body) == order
    read_back: Any = parse_envelope(body)
    for part in path:
        read_back = getattr(read_back, part)
    assert read_back == text


@pytest.mark.parametrize(
    "payload",
    [
        valid_payload(),
        {"customer_id": "c", "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unit_price": 0}]},
        with_text(("shipping_address", "name"), "x" + SQS_REFUSED + AWKWARD),
    ],
    ids=["complete", "minimal", "awkward-text"],
)
def test_the_queued_body_is_the_v2_envelope_models_own_json(payload: dict[str, Any]) -> None:
    # Given an accepted order
    order = Order.accept_payload(payload, producer="acme")
    # When it is wrapped for the queue
    body = wrap(order)
    # Then the bytes are exactly the v2 envelope model's JSON (escaped to ASCII)
    assert body == ascii_json(OrderEnvelopeV2(order=order).model_dump_json())
    assert json.loads(body)["schema_version"] == CURRENT_SCHEMA_VERSION


def test_an_order_without_its_producer_is_not_wrapped() -> None:
    # Given an order built with no producer (as v1 envelopes carry them)
    order = Order.accept(OrderRequest.model_validate(valid_payload()), producer="acme").model_copy(
        update={"producer": None}
    )
    # When it is wrapped, Then it is refused: a v2 envelope names the producer
    with pytest.raises(ValueError, match="producer"):
        wrap(order)


def test_an_envelope_written_before_the_escaping_is_still_read() -> None:
    # Given a message an older ingest wrote: raw UTF-8 JSON, non-ASCII characters unescaped
    order = Order.accept(
        OrderRequest.model_validate(with_text(("client_reference",), "caf\u00e9 \U0001f4a5")),
        producer="acme",
    )
    old_body = OrderEnvelopeV2(order=order).model_dump_json()
    assert not old_body.isascii()
    # When a writer reads it, Then it gets the same order as from the escaped form
    assert parse_envelope(old_body) == parse_envelope(wrap(order)) == order


@pytest.mark.parametrize("path", FREE_TEXT_FIELDS, ids=".".join)
@pytest.mark.parametrize(
    "surrogate", [chr(0xD800), chr(0xDFFF), f"a{chr(0xDC00)}b"], ids=["D800", "DFFF", "aDC00b"]
)
def test_a_lone_surrogate_is_refused_naming_the_field(path: tuple[str, ...], surrogate: str) -> None:
    # A lone surrogate (from a JSON escape such as "\ud800") is not a character: no UTF-8 store takes it
    assert invalid_fields(with_text(path, surrogate)) == {".".join(path)}


def test_nul_and_noncharacters_are_valid_text() -> None:
    request = OrderRequest.model_validate(valid_payload(client_reference="a\x00b\uffff"))
    assert request.client_reference == "a\x00b\uffff"


def test_a_maximal_order_fits_the_body_limit_and_ten_of_its_envelopes_one_send_batch() -> None:
    # Given an order with every field at its longest, each character as long as JSON can make it
    # (astral: a 12-byte surrogate-pair escape), 100 line items at their longest
    astral = "\U0010fffd"
    address = {name: astral * 200 for name in ("name", "line1", "line2", "city", "region")}
    request = OrderRequest.model_validate(
        valid_payload(
            customer_id="C" * 64,
            client_reference=astral * 64,
            shipping_address={**address, "postal_code": astral * 20, "country": "GB"},
            items=[{"sku": "S" * 64, "quantity": MAX_QUANTITY_PER_LINE, "unit_price": "9999999999.99"}]
            * MAX_LINE_ITEMS_PER_ORDER,
        )
    )
    # Then a producer's ASCII JSON of it is within the single-order body limit...
    assert len(json.dumps(request.model_dump(mode="json")).encode()) <= MAX_ORDER_BODY_BYTES
    # ...and ten envelopes fit one SendMessageBatch call (256 KiB), as the publisher sends them
    assert 10 * len(wrap(Order.accept(request, producer="acme")).encode()) <= 256 * 1024


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("1.500"), "1.50"),
        (Decimal("-0"), "0"),
        (Decimal("-0.00"), "0.00"),
        ("19.9", "19.9"),
        ("007.50", "7.50"),
    ],
)
def test_a_price_is_stored_and_answered_in_its_plain_spelling(sent: Any, stored: str) -> None:
    order = Order.accept(OrderRequest.model_validate(with_item(unit_price=sent)), producer="acme")
    assert json.loads(order.model_dump_json())["items"][0]["unit_price"] == stored


def test_an_integral_number_is_a_quantity() -> None:
    # JSON Schema counts 2.0 as an integer; the ingest parses it as Decimal("2.0")
    assert OrderRequest.model_validate(with_item(quantity=Decimal("2.0"))).items[0].quantity == 2


def _price_outcome(adapter: Any, price: Any) -> Any:
    try:
        return str(adapter.validate_python(price))
    except ValidationError as error:
        return error.errors(include_url=False)


def test_price_checks_answer_exactly_as_pydantics_field_constraints() -> None:
    # Given pydantic's own constraints for a price (what the model declared before its single
    # validator), and prices around every bound: negative, too large, too many digits or places,
    # spellings with exponents and trailing zeros, numbers and text
    from decimal import localcontext
    from random import Random
    from typing import Annotated

    from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter

    from orderpipe_common import model

    def plain(price: Decimal) -> Decimal:
        exponent = price.as_tuple().exponent
        assert isinstance(exponent, int)
        if exponent > 0:
            price = price.quantize(Decimal(1))
        elif exponent < -model.PRICE_DECIMAL_PLACES:
            price = price.quantize(Decimal("0.01"))
        return price.copy_abs() if price.is_zero() else price

    reference: TypeAdapter[Decimal] = TypeAdapter(
        Annotated[
            Decimal,
            BeforeValidator(model._price_text_is_plain),
            Field(
                ge=Decimal("0"),
                le=model.MAX_UNIT_PRICE,
                max_digits=model.PRICE_MAX_DIGITS,
                decimal_places=model.PRICE_DECIMAL_PLACES,
                allow_inf_nan=False,
            ),
            AfterValidator(plain),
        ]
    )
    shipped: TypeAdapter[Decimal] = TypeAdapter(model.UnitPrice)
    rng = Random(16)
    prices: list[Any] = [0, 1, -1, 10**10, 10**12, -(10**11), True, None, "19.99", "-1", "1e3", 1.5, -1.5]
    prices += [Decimal(text) for text in ["NaN", "Infinity", "-0", "1E+10", "1E+2", "1.500", "1.005",
               "-1.005", "9999999999.99", "9999999999.999", "12345678901.5", "1234567890.123", "0.00100",
               "-1E+20", "1E+999999", "1E-999999", "100.000000", "-0E+5", "0E-10",
               "1.0000000000000000000000000000001"]]  # fmt: skip
    with localcontext() as context:
        context.prec = 28
        for _ in range(3_000):
            digits = rng.randint(0, 10 ** rng.randint(1, 16))
            prices.append(Decimal(f"{rng.choice(['', '-'])}{digits}E{rng.randint(-6, 4)}"))
            prices.append(f"{rng.randint(0, 10**11)}.{rng.randint(0, 999)}")
    # When both validate each of them
    # Then the shipped price gives the same value, or the same errors (type, message, context)
    assert [_price_outcome(shipped, p) for p in prices] == [_price_outcome(reference, p) for p in prices]


def _acceptance(accept: Any, payload: Any) -> Any:
    try:
        return wrap(accept(payload))
    except ValidationError as error:
        return error.errors(include_url=False)


@pytest.mark.parametrize(
    "payload",
    [
        valid_payload(),
        {"customer_id": "c", "currency": "EUR", "items": [{"sku": "A", "quantity": 1, "unit_price": 0}]},
        with_item(unit_price=Decimal("1.500"), quantity=Decimal("2.0")),
        valid_payload(currency="???", items=[{"sku": "", "quantity": 0, "unit_price": "-1"}]),
        valid_payload(order_id=str(uuid.uuid4())),
        valid_payload(producer="someone-else"),
        valid_payload(accepted_at="2026-11-24T00:00:00Z"),
        valid_payload(unknown=1),
        {},
        [valid_payload()],
        "an order",
        None,
    ],
    ids=lambda payload: json.dumps(payload, default=str)[:40],
)
def test_accepting_a_payload_is_accepting_its_validated_request(payload: Any) -> None:
    # Given a moment and an order id, as the ingest passes them
    moment = datetime(2026, 11, 24, 7, 30, 15, 123_987, tzinfo=UTC)
    order_id = uuid.uuid4()
    # When a payload is accepted in one validation, and the long way (request, then order)
    fast = _acceptance(
        lambda body: Order.accept_payload(body, producer="acme", now=moment, order_id=order_id), payload
    )
    slow = _acceptance(
        lambda body: Order.accept(
            OrderRequest.model_validate(body), producer="acme", now=moment, order_id=order_id
        ),
        payload,
    )
    # Then the queue gets the same envelope bytes, or the producer the same field errors
    assert fast == slow
