"""The message put on the orders queue: the order inside a versioned envelope.

A writer reads every version it knows, so a message enqueued by an older ingest still lands.
To change the order's shape: add `OrderEnvelopeV2`, teach `parse_envelope` to read it, and only
then deploy an ingest that writes it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from orderpipe_common.model import Order

CURRENT_SCHEMA_VERSION = 1


class OrderEnvelopeV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    order: Order


class UnreadableMessageError(ValueError):
    """The message body is not an envelope this writer can read (it belongs in the DLQ)."""


def wrap(order: Order) -> str:
    return OrderEnvelopeV1(order=order).model_dump_json()


def parse_envelope(body: str) -> Order:
    try:
        return OrderEnvelopeV1.model_validate_json(body).order
    except ValidationError as error:
        raise UnreadableMessageError(_describe(error)) from error


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in detail["loc"]) or "body"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)
