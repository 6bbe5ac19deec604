"""Reader Lambda: GET /orders/{order_id} through the DynamoDB read cache."""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from orderpipe_common.deadlines import Deadline
from orderpipe_common.http import (
    BadRequestError,
    ErrorAnswer,
    NotFoundError,
    error_responses,
    json_answer,
    register_error_handlers,
    security_requirements,
    security_schemes,
)
from orderpipe_common.identity import SCOPE_READ, UnauthenticatedError, caller_from_event
from orderpipe_common.model import UUID_TEXT_PATTERN, Order
from orderpipe_common.observability import logger, metrics
from orderpipe_common.per_process import init_done, per_process
from orderpipe_common.settings import load
from orderpipe_reader.cache import DynamoDbOrderCache
from orderpipe_reader.logic import read_order
from orderpipe_reader.settings import ReaderSettings
from orderpipe_reader.store import CassandraOrderSource, StoreUnavailableError

OPENAPI_SECURITY_SCHEMES = security_schemes  # called by the OpenAPI generator only
# Kept back from the function's timeout to answer (a 503 beats a Lambda timeout's 502).
ANSWER_RESERVE_SECONDS = 0.5


@per_process
def get_settings() -> ReaderSettings:
    return load(ReaderSettings)


app = APIGatewayRestResolver()
register_error_handlers(
    app,
    {
        UnauthenticatedError: ErrorAnswer(HTTPStatus.UNAUTHORIZED, "unauthenticated"),
        StoreUnavailableError: ErrorAnswer(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "service_unavailable",
            lambda: get_settings().unavailable_retry_after_seconds,
        ),
    },
)


@per_process
def get_cache() -> DynamoDbOrderCache:
    settings = get_settings()
    return DynamoDbOrderCache(table_name=settings.cache_table_name, ttl_seconds=settings.cache_ttl_seconds)


@per_process
def get_source() -> CassandraOrderSource:
    return CassandraOrderSource(get_settings())


_UUID_TEXT = re.compile(UUID_TEXT_PATTERN)


def parse_order_id(raw: str) -> uuid.UUID:
    # Only the hyphenated form the document states (uuid.UUID would also take braces, "urn:uuid:"
    # and 32 bare hex digits).
    if not _UUID_TEXT.fullmatch(raw):
        raise BadRequestError(
            "order_id must be a UUID (8-4-4-4-12 hexadecimal digits)",
            fields=[{"field": "order_id", "message": "not a valid UUID", "type": "uuid_parsing"}],
        )
    return uuid.UUID(raw)


@app.get(
    "/orders/<order_id>",
    summary="Read one order",
    description=(
        "The stored order. Orders are written asynchronously after `POST /orders` answers 202: until "
        "then this answers 404 with a `Retry-After` hint (poll again). A producer reads its own orders; "
        "another producer's order answers the same 404 (the `orders/read-all` scope, or in IAM mode a "
        "read-all principal, reads every order). Answers come from a read cache when they can; a 404 "
        "is never cached."
    ),
    tags=["orders"],
    security=security_requirements(SCOPE_READ),
    responses={
        200: {"description": "The order.", "content": {content_types.APPLICATION_JSON: {"model": Order}}},
        **error_responses(
            [400, 401, 403, 404, 503],
            descriptions={
                400: "`order_id` is not a UUID.",
                404: "No order with this id, or not written yet: poll again after `Retry-After` seconds.",
            },
            retry_after=[404, 503],
        ),
    },
)
def handle_get_order(
    order_id: Annotated[
        str,
        Path(
            description="The `order_id` the POST answered.",
            pattern=UUID_TEXT_PATTERN,
            json_schema_extra={"format": "uuid"},
        ),
    ],
) -> Response[Order]:
    settings = get_settings()
    caller = caller_from_event(app.current_event.raw_event, read_all_principals=settings.read_all_principals)
    parsed_id = parse_order_id(order_id)
    deadline = Deadline.of_invocation(
        app.lambda_context,
        reserve_seconds=ANSWER_RESERVE_SECONDS,
        budget_seconds=settings.answer_budget_seconds,
    )
    order = read_order(
        parsed_id,
        caller=caller,
        legacy_producer=settings.legacy_producer,
        cache=get_cache(),
        source=get_source(),
        deadline=deadline,
    )
    if order is None:
        # The pipeline is asynchronous: an accepted order may not be written yet.
        raise NotFoundError(
            f"order {parsed_id} not found (it may not be written yet)",
            retry_after=settings.not_found_retry_after_seconds,
        )
    return json_answer(HTTPStatus.OK, order)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


init_done()
