"""Ingest Lambda: `POST /orders` and `POST /orders/batch` (API Gateway REST proxy events).

A thin handler: check the request's shape (content type, size, JSON), run the logic (through the
idempotency layer when an `Idempotency-Key` is sent) and map the result to an answer. Errors are
answered by orderpipe_common.http.

Batch endpoint: the body is a JSON array of 1..MAX_ORDERS_PER_BATCH orders. Answers:
- `202` when at least one order was accepted: per-index results (`accepted` with `order_id`,
  `rejected` with field errors, `failed` when the queue did not take a valid order).
- `422` when no order is valid (each error names `<index>.<field>`), or the body is not an array.
- `503` + `Retry-After` when valid orders exist but the queue took none of them, or (with an
  Idempotency-Key) a queue call went unanswered: the same request again keeps every order's id.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from orderpipe_common.deadlines import Deadline
from orderpipe_common.http import (
    ErrorAnswer,
    MalformedJsonError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    error_responses,
    json_answer,
    json_request_body,
    register_error_handlers,
    security_requirements,
    security_schemes,
)
from orderpipe_common.identity import SCOPE_WRITE, Caller, UnauthenticatedError, caller_from_event
from orderpipe_common.model import (
    MAX_BATCH_BODY_BYTES,
    MAX_ORDER_BODY_BYTES,
    MAX_ORDERS_PER_BATCH,
    OrderRequest,
)
from orderpipe_common.observability import logger, metrics
from orderpipe_common.per_process import init_done
from orderpipe_ingest import idempotency, publisher, settings
from orderpipe_ingest.logic import BatchRejectedError, accept_batch, accept_order
from orderpipe_ingest.publisher import QueueUnavailableError
from orderpipe_ingest.request_json import DuplicateKeyError, parse_request_json
from orderpipe_ingest.responses import BatchAccepted, OrderAccepted

# Kept back from the function's timeout to answer (a 503 beats a Lambda timeout's 502).
ANSWER_RESERVE_SECONDS = 0.5


def _retry_after() -> int:
    return settings.get_settings().retry_after_seconds


app = APIGatewayRestResolver()
register_error_handlers(
    app,
    {
        UnauthenticatedError: ErrorAnswer(HTTPStatus.UNAUTHORIZED, "unauthenticated"),
        BatchRejectedError: ErrorAnswer(HTTPStatus.UNPROCESSABLE_ENTITY, "batch_rejected"),
        QueueUnavailableError: ErrorAnswer(HTTPStatus.SERVICE_UNAVAILABLE, "queue_unavailable", _retry_after),
        idempotency.InvalidIdempotencyKeyError: ErrorAnswer(HTTPStatus.BAD_REQUEST, "bad_request"),
        # 409, not 422: the body may be valid; it conflicts with what the key already stands for.
        idempotency.IdempotencyKeyReusedError: ErrorAnswer(HTTPStatus.CONFLICT, "idempotency_key_reused"),
        idempotency.RequestInProgressError: ErrorAnswer(
            HTTPStatus.CONFLICT, "conflict", lambda: idempotency.IN_PROGRESS_RETRY_AFTER_SECONDS
        ),
        idempotency.IdempotencyStoreUnavailableError: ErrorAnswer(
            HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable", _retry_after
        ),
    },
)

# Models the routes' request bodies refer to (added to the OpenAPI components by the generator).
OPENAPI_COMPONENT_MODELS: tuple[type[BaseModel], ...] = (OrderRequest,)
OPENAPI_SECURITY_SCHEMES = security_schemes  # called by the OpenAPI generator only
_IDEMPOTENCY_DOC = (
    f"Send an `{idempotency.IDEMPOTENCY_HEADER}` header ({idempotency.IDEMPOTENCY_KEY_RULE}) "
    "to make retries safe: the same key and body within the window get the same answer "
    "and enqueue nothing new (keys are the calling producer's own: another producer's key never "
    "matches); the same key with another body gets a 409 `idempotency_key_reused` (use a new key for "
    "a new request); while the first request with a key still runs, others get a 409 `conflict` with "
    "Retry-After. Failures are not remembered."
)

_IDEMPOTENCY_PARAMETER = {
    "name": idempotency.IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Makes a retried POST safe: see the operation's description.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.MAX_IDEMPOTENCY_KEY_LENGTH,
        "pattern": idempotency.IDEMPOTENCY_KEY_PATTERN,
    },
}


def read_json_body(max_bytes: int) -> Any:
    """The request's JSON body, numbers with a fraction as exact Decimals (request_json.py).

    Checked in this order: content type (415), size before parsing (413), syntax and repeated keys (400).
    """
    event = app.current_event
    content_type = event.headers.get("content-type") or ""
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    charsets = [p.split("=", 1)[1].strip('"') for p in params if p.startswith("charset=")]
    if media_type != content_types.APPLICATION_JSON or any(c not in {"utf-8", "utf8"} for c in charsets):
        raise UnsupportedMediaTypeError(
            "send the body as application/json (UTF-8)",
            fields=[
                {"field": "header.Content-Type", "message": "expected application/json", "type": "media_type"}
            ],
        )
    raw = event.get("body") or ""
    # Base64 inflates by 4/3: check the encoded size first, then the real one.
    if len(raw) > max_bytes * 4 // 3 + 4:
        raise _too_large(max_bytes)
    try:
        body = event.decoded_body or ""
    except (ValueError, UnicodeDecodeError):
        raise MalformedJsonError("the body is not UTF-8 text") from None
    if len(body.encode()) > max_bytes:
        raise _too_large(max_bytes)
    try:
        return parse_request_json(body)
    except DuplicateKeyError as error:
        raise MalformedJsonError(
            f"the body is ambiguous: {error}",
            fields=[{"field": error.field, "message": str(error), "type": "json_duplicate_key"}],
        ) from None
    except ValueError as error:
        raise MalformedJsonError(
            f"the body is not valid JSON: {error}",
            fields=[{"field": "body", "message": str(error), "type": "json_invalid"}],
        ) from None
    except RecursionError:  # deeply nested arrays/objects exhaust the parser's stack: a 400, not a 500
        raise MalformedJsonError(
            "the body is nested too deeply",
            fields=[{"field": "body", "message": "nested too deeply", "type": "json_invalid"}],
        ) from None


def _too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the body is larger than {max_bytes} bytes")


def _deadline() -> Deadline:
    """When this request must be answered: within the answer budget, before the function's timeout."""
    return Deadline.of_invocation(
        app.lambda_context,
        reserve_seconds=ANSWER_RESERVE_SECONDS,
        budget_seconds=settings.get_settings().answer_budget_seconds,
    )


def _idempotency_key() -> str | None:
    return idempotency.validate_key(app.current_event.headers.get(idempotency.IDEMPOTENCY_HEADER))


def _caller() -> Caller:
    """The producer the gateway authenticated (never one named in the body or a header)."""
    return caller_from_event(app.current_event.raw_event)


@app.post(
    "/orders",
    summary="Submit one order",
    description=(
        f"Validates the order, assigns `order_id` and puts it on the queue; the order is stored "
        f"asynchronously (poll `GET /orders/{{order_id}}`). Body at most {MAX_ORDER_BODY_BYTES} bytes. "
        + _IDEMPOTENCY_DOC
    ),
    tags=["orders"],
    security=security_requirements(SCOPE_WRITE),
    responses={
        202: {
            "description": "Accepted: the order is queued (not yet stored). `Location` names the order.",
            "headers": {
                "Location": {
                    "description": "`/orders/{order_id}`: where the order will be readable.",
                    "schema": {"type": "string"},
                }
            },
            "content": {content_types.APPLICATION_JSON: {"model": OrderAccepted}},
        },
        **error_responses([400, 401, 403, 409, 413, 415, 422, 503]),
    },
    openapi_extensions={
        **json_request_body(OrderRequest, description="One order."),
        "parameters": [_IDEMPOTENCY_PARAMETER],
    },
)
def post_order() -> Response[OrderAccepted]:
    caller = _caller()
    payload = read_json_body(MAX_ORDER_BODY_BYTES)
    key, route = _idempotency_key(), "POST /orders"
    seed = idempotency.order_id_seed(key=key, producer=caller.producer, route=route, body=payload)
    answer = idempotency.run_idempotently(
        key=key,
        producer=caller.producer,
        route=route,
        body=payload,
        operation=lambda body, deadline: accept_order(
            body, publisher.publisher_within(deadline), caller=caller, order_id_seed=seed
        ),
        answer_type=OrderAccepted,
        deadline=_deadline(),
    )
    return json_answer(HTTPStatus.ACCEPTED, answer, headers={"Location": f"/orders/{answer.order_id}"})


def _accept_batch(
    body: Any, deadline: Deadline, *, caller: Caller, order_id_seed: str | None
) -> BatchAccepted:
    config = settings.get_settings()
    return accept_batch(
        body,
        publisher.publisher_within(deadline),
        caller=caller,
        max_send_attempts=config.batch_send_attempts,
        sleep=deadline.sleep,
        order_id_seed=order_id_seed,
    )


@app.post(
    "/orders/batch",
    summary="Submit up to 100 orders at once",
    description=(
        f"A JSON array of 1 to {MAX_ORDERS_PER_BATCH} orders (body at most {MAX_BATCH_BODY_BYTES} bytes), "
        "each validated on its own. The answer lists, by index, which orders were accepted (with their "
        "`order_id`), rejected (with field errors) or failed (valid, but the queue did not take them: "
        "safe to send again). " + _IDEMPOTENCY_DOC
    ),
    tags=["orders"],
    security=security_requirements(SCOPE_WRITE),
    responses={
        202: {
            "description": "At least one order was accepted; `results` has one entry per posted order.",
            "content": {content_types.APPLICATION_JSON: {"model": BatchAccepted}},
        },
        **error_responses(
            [400, 401, 403, 409, 413, 415, 422, 503],
            descriptions={
                422: "The body is not an array of 1-100 items, or no order is valid "
                "(`error.fields` names `<index>.<field>`). Nothing was enqueued.",
                503: "The queue took none of the valid orders; nothing was accepted. Or, with an "
                "`Idempotency-Key`, a call to the queue went unanswered, so some orders may be queued: "
                "send the same request again (same key and body) after `Retry-After` seconds; every "
                "order keeps its id and none is stored twice.",
            },
        ),
    },
    openapi_extensions={
        **json_request_body(
            OrderRequest,
            description=f"1 to {MAX_ORDERS_PER_BATCH} orders, at least one of them valid; each item that is "
            "not a valid order is answered as `rejected` with its field errors.",
            many=True,
            max_items=MAX_ORDERS_PER_BATCH,
        ),
        "parameters": [_IDEMPOTENCY_PARAMETER],
    },
)
def post_orders_batch() -> Response[BatchAccepted]:
    caller = _caller()
    payload = read_json_body(MAX_BATCH_BODY_BYTES)
    key, route = _idempotency_key(), "POST /orders/batch"
    seed = idempotency.order_id_seed(key=key, producer=caller.producer, route=route, body=payload)
    answer = idempotency.run_idempotently(
        key=key,
        producer=caller.producer,
        route=route,
        body=payload,
        operation=lambda body, deadline: _accept_batch(body, deadline, caller=caller, order_id_seed=seed),
        answer_type=BatchAccepted,
        deadline=_deadline(),
    )
    return json_answer(HTTPStatus.ACCEPTED, answer)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


init_done()
