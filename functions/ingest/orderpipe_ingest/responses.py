"""What the ingest API answers (also the OpenAPI response schemas)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orderpipe_common.http import FieldError
from orderpipe_common.model import MAX_ORDERS_PER_BATCH


class OrderAccepted(BaseModel):
    """The order is on the queue (not yet stored): poll `Location` until it is readable."""

    model_config = ConfigDict(extra="forbid")

    order_id: uuid.UUID
    status: Literal["accepted"] = "accepted"


class BatchItemResult(BaseModel):
    """The fate of the order at `index` of the posted array.

    - `accepted`: on the queue, with its `order_id`.
    - `rejected`: invalid, `errors` names each field; sending it again unchanged will not help.
    - `failed`: valid, but the queue did not take it in time; nothing was enqueued for it, so it is
      safe to send again (under a new Idempotency-Key).
    """

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, lt=MAX_ORDERS_PER_BATCH)
    status: Literal["accepted", "rejected", "failed"]
    order_id: uuid.UUID | None = None
    errors: list[FieldError] | None = None


class BatchAccepted(BaseModel):
    """Per-order results, one per posted order, in the posted order."""

    model_config = ConfigDict(extra="forbid")

    accepted: int = Field(ge=0, le=MAX_ORDERS_PER_BATCH)
    rejected: int = Field(ge=0, le=MAX_ORDERS_PER_BATCH)
    failed: int = Field(ge=0, le=MAX_ORDERS_PER_BATCH)
    results: list[BatchItemResult] = Field(max_length=MAX_ORDERS_PER_BATCH)
