"""The message put on the orders queue: the order inside a versioned envelope.

A writer reads every version it knows, so a message enqueued by an older ingest still lands.
To change the order's shape: add `OrderEnvelopeV<n+1>`, teach `parse_envelope` to read it, and only
then deploy an ingest that writes it. v2 added the producer (a stack update deploys the writer with
the ingest; a v1 message still in the queue is written with no producer).

The message body is ASCII: every other character is written as a JSON `\\u` escape. SQS refuses a
body with some characters (U+FFFE and U+FFFF among them; only #x9, #xA, #xD, #x20-#xD7FF,
#xE000-#xFFFD and #x10000-#x10FFFF pass), while an order's free text may hold any character, and
JSON escapes read back as the same text, so a writer reads old (raw UTF-8) and new bodies alike.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from orderpipe_common.model import Order

CURRENT_SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = frozenset({1, 2})


class OrderEnvelopeV1(BaseModel):
    """Before producers: the order has no `producer` (stored as null; read as the legacy producer's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    order: Order

    @field_validator("order")
    @classmethod
    def _no_producer(cls, order: Order) -> Order:
        if order.producer is not None:
            raise ValueError("a v1 envelope carries no producer")
        return order


class OrderEnvelopeV2(BaseModel):
    """The order with the producer that posted it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[2] = 2
    order: Order

    @field_validator("order")
    @classmethod
    def _has_producer(cls, order: Order) -> Order:
        if order.producer is None:
            raise ValueError("a v2 envelope names the order's producer")
        return order


_ENVELOPE: TypeAdapter[OrderEnvelopeV1 | OrderEnvelopeV2] = TypeAdapter(
    Annotated[OrderEnvelopeV1 | OrderEnvelopeV2, Field(discriminator="schema_version")]
)


class UnreadableMessageError(ValueError):
    """The message body is not an envelope this writer can read (it belongs in the DLQ)."""


def wrap(order: Order) -> str:
    """The message body for `order`: `OrderEnvelopeV2(order=order).model_dump_json()`, ASCII.

    Written around the order's own JSON: the order is valid already, and validating it into the
    envelope model again cost a fifth of wrapping it (docs/benchmarks.md, ingest_cpu).
    """
    if order.producer is None:
        raise ValueError("a v2 envelope names the order's producer")
    return ascii_json(f"{_V2_START}{order.model_dump_json()}}}")


_V2_START = f'{{"schema_version":{OrderEnvelopeV2.model_fields["schema_version"].default},"order":'


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # outside the BMP: a UTF-16 surrogate pair, as JSON spells it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def ascii_json(text: str) -> str:
    """JSON text with every non-ASCII character escaped (outside strings JSON has only ASCII)."""
    return text if text.isascii() else _NON_ASCII.sub(_escape, text)


def parse_envelope(body: str) -> Order:
    try:
        return _ENVELOPE.validate_json(body).order
    except ValidationError as error:
        raise UnreadableMessageError(_describe(error)) from error


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in detail["loc"]) or "body"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)
