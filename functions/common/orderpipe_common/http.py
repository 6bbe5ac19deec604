"""HTTP errors for the REST handlers, mapped in one place.

Domain code raises these (or lets pydantic raise a ValidationError); `register_error_handlers`
turns each into a JSON body `{"error": {"code", "message", "fields"?}}` with the right status.
Nothing here ever answers 500 with a stack trace: unknown exceptions become a logged, opaque 500.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from pydantic import ValidationError

from orderpipe_common.observability import logger


class HttpError(Exception):
    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    code = "bad_request"

    def __init__(
        self, message: str, *, fields: list[dict[str, Any]] | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.retry_after = retry_after


class MalformedJson(HttpError):
    status, code = HTTPStatus.BAD_REQUEST, "malformed_json"


class BadRequest(HttpError):
    status, code = HTTPStatus.BAD_REQUEST, "bad_request"


class NotFound(HttpError):
    status, code = HTTPStatus.NOT_FOUND, "not_found"


class Conflict(HttpError):
    status, code = HTTPStatus.CONFLICT, "conflict"


class PayloadTooLarge(HttpError):
    status, code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large"


class UnsupportedMediaType(HttpError):
    status, code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"


class Unprocessable(HttpError):
    status, code = HTTPStatus.UNPROCESSABLE_ENTITY, "unprocessable"


class ServiceUnavailable(HttpError):
    status, code = HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable"


class InternalError(HttpError):
    status, code = HTTPStatus.INTERNAL_SERVER_ERROR, "internal"


def field_errors(error: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """One entry per invalid field, with a dotted path a producer can act on."""
    return [
        {
            "field": ".".join(str(part) for part in (*prefix, *detail["loc"])) or "body",
            "message": detail["msg"],
            "type": detail["type"],
        }
        for detail in error.errors(include_url=False, include_input=False, include_context=False)
    ]


def error_response(error: HttpError) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.fields:
        body["fields"] = error.fields
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return Response(
        status_code=int(error.status),
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": body}),
        headers=headers,
    )


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler(HttpError)
    def _http_error(error: HttpError) -> Response:
        logger.info("request refused", extra={"status": int(error.status), "code": error.code})
        return error_response(error)

    @app.exception_handler(ValidationError)
    def _validation_error(error: ValidationError) -> Response:
        return error_response(Unprocessable("the request is not a valid order", fields=field_errors(error)))

    @app.not_found
    def _no_route(_: Exception) -> Response:
        return error_response(NotFound("no such route"))

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unexpected error")
        return error_response(InternalError("internal error; the request was not processed"))
