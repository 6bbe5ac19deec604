"""Idempotency-Key handling: Powertools idempotency over DynamoDB, around the enqueue logic only.

The key is scoped to the producer and the route: two producers who both number their keys 1, 2, 3
never see each other's answers, and `POST /orders` and `POST /orders/batch` never share one. The
request body is the payload validated on replay, so the same key with another body is refused.
Only successful answers are stored: the wrapped logic raises on every failure (invalid input, queue
down), and Powertools deletes its in-progress record when the function raises.

Within the request's deadline: each DynamoDB call gets at most IDEMPOTENCY_CALL_SECONDS (never
retried: a conditional write whose answer was lost may have landed), the enqueue runs with that much
kept back for the final record update, and the in-progress record expires at the deadline, so a
request that could not clean up (the store went silent) holds its key no longer than that. When the
order is on the queue but the answer cannot be recorded, the producer still gets its 202: the key is
free again after the deadline, and a retry with it re-sends the same order id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from pydantic import BaseModel

from orderpipe_common.aws_calls import client_within
from orderpipe_common.deadlines import Deadline
from orderpipe_common.errors import DomainError
from orderpipe_common.observability import logger
from orderpipe_common.per_process import per_process
from orderpipe_common.tables import IDEMPOTENCY_EXPIRY_ATTRIBUTE, IDEMPOTENCY_PARTITION_KEY
from orderpipe_ingest.settings import get_settings

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Visible ASCII, with spaces only between characters: a key an HTTP header carries unchanged.
IDEMPOTENCY_KEY_PATTERN = rf"^[!-~](?:[ -~]{{0,{MAX_IDEMPOTENCY_KEY_LENGTH - 2}}}[!-~])?$"
IDEMPOTENCY_KEY_RULE = (
    f"1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters (spaces only between characters)"
)
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
# How long a producer should wait before retrying while the first request with its key still runs.
IN_PROGRESS_RETRY_AFTER_SECONDS = 1

# One DynamoDB call at most (the in-progress write, the final update or delete).
IDEMPOTENCY_CALL_SECONDS = 1.0

# The guarded work: the request body and the deadline it must finish by -> the answer.
type Operation[A: BaseModel] = Callable[[Any, Deadline], A]


class InvalidIdempotencyKeyError(DomainError):
    """The key is empty, too long or not printable."""


class IdempotencyKeyReusedError(DomainError):
    """The key was used before with another body: a retry must send the same body."""


class RequestInProgressError(DomainError):
    """The first request with this key still runs; retry in IN_PROGRESS_RETRY_AFTER_SECONDS."""


class IdempotencyStoreUnavailableError(DomainError):
    """The idempotency store cannot be reached: nothing was done."""


@dataclass(frozen=True)
class _Idempotent:
    config: IdempotencyConfig
    persistence: DynamoDBPersistenceLayer
    run: Callable[..., dict[str, Any]]


def validate_key(raw: str | None) -> str | None:
    """The header's value, or None when absent; InvalidIdempotencyKeyError unless it is IDEMPOTENCY_KEY_RULE."""
    if raw is None:
        return None
    if not _KEY.fullmatch(raw):
        raise InvalidIdempotencyKeyError(
            f"{IDEMPOTENCY_HEADER} must be {IDEMPOTENCY_KEY_RULE}",
            fields=[
                {
                    "field": f"header.{IDEMPOTENCY_HEADER}",
                    "message": f"expected {IDEMPOTENCY_KEY_RULE}",
                    "type": "value_error",
                }
            ],
        )
    return raw


@per_process
def _idempotent() -> _Idempotent:
    settings = get_settings()
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table_name,
        key_attr=IDEMPOTENCY_PARTITION_KEY,
        expiry_attr=IDEMPOTENCY_EXPIRY_ATTRIBUTE,
        # Replaced per request by a client whose timeouts fit the request's deadline.
        boto3_client=_dynamodb_client(Deadline.after(IDEMPOTENCY_CALL_SECONDS)),
    )
    config = IdempotencyConfig(
        event_key_jmespath="[producer, route, key]",
        payload_validation_jmespath="body",
        expires_after_seconds=settings.idempotency_expires_after_seconds,
        raise_on_no_idempotency_key=True,
    )

    @idempotent_function(data_keyword_argument="request", config=config, persistence_store=persistence)
    def run(request: dict[str, Any], operation: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return operation(request["body"])

    return _Idempotent(config=config, persistence=persistence, run=run)


def _dynamodb_client(deadline: Deadline) -> Any:
    return client_within("dynamodb", deadline, cap_seconds=IDEMPOTENCY_CALL_SECONDS)


def order_id_seed(*, key: str | None, producer: str, route: str, body: Any) -> str | None:
    """With a key, order ids derive from the producer, the route, the key and the body.

    A retry after an ambiguous failure (SQS took the message but its answer was lost, so the client
    saw a 503 and nothing was remembered under the key) then re-sends the same order_id, and the
    writer upserts one order instead of storing two. The body is part of the seed so that a key
    reused for another order after the idempotency window never overwrites the first one, and the
    producer so that two producers sending the same key and body get two orders, not one.
    """
    if key is None:
        return None
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return f"{producer}\n{route}\n{key}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def run_idempotently[A: BaseModel](
    *,
    key: str | None,
    producer: str,
    route: str,
    body: Any,
    operation: Operation[A],
    answer_type: type[A],
    deadline: Deadline,
) -> A:
    """`operation(body, deadline)`, or with a key, the stored answer of this producer's earlier success with it.

    Answers are stored as JSON (`answer_type`'s dump) and validated back only when replayed: the
    answer of an operation run by this request is returned as it is.
    """
    if key is None:
        return operation(body, deadline)
    idempotent = _idempotent()
    call_seconds = min(IDEMPOTENCY_CALL_SECONDS, deadline.remaining() / 2.5)
    idempotent.persistence.client = _dynamodb_client(deadline.within(call_seconds))
    # The in-progress record expires at the deadline (a request that could not clean up frees its key).
    idempotent.config.register_lambda_context(deadline.as_context())  # type: ignore[arg-type]
    answered: list[A] = []

    def guarded(request_body: Any) -> dict[str, Any]:
        answered.append(operation(request_body, deadline.earlier_by(call_seconds)))
        return answered[-1].model_dump(mode="json")

    try:
        stored = idempotent.run(
            request={"producer": producer, "route": route, "key": key, "body": body}, operation=guarded
        )
    except IdempotencyPersistenceLayerError as error:
        if answered:  # the work is done (the order is queued); only remembering the answer failed
            logger.warning(
                "answer not recorded under the idempotency key; it expires at the deadline", exc_info=error
            )
            return answered[-1]
        # Chained, so the log names the store's error (a timeout, a refusal); the answer does not.
        raise IdempotencyStoreUnavailableError(
            "the idempotency store is unavailable; nothing was accepted, retry later"
        ) from error
    except IdempotencyValidationError:
        raise IdempotencyKeyReusedError(
            f"this {IDEMPOTENCY_HEADER} was already used with a different body; use a new key for a new request",
            fields=[
                {
                    "field": f"header.{IDEMPOTENCY_HEADER}",
                    "message": "key reused with a different body",
                    "type": "idempotency_key_reused",
                }
            ],
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise RequestInProgressError(
            f"a request with this {IDEMPOTENCY_HEADER} is still in progress"
        ) from None
    # Run here: this request's own answer; else the earlier success's, replayed.
    return answered[-1] if answered else answer_type.model_validate(stored)
