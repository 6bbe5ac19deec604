"""HTTP answers of the REST handlers, errors mapped in one place.

Domain code raises domain errors (`orderpipe_common.errors.DomainError` subclasses) or lets pydantic
raise a ValidationError; it knows nothing of HTTP. A handler raises the `HttpError`s below only for
what is about HTTP itself (content type, body size, malformed JSON, route parameters), and gives
`register_error_handlers` its table of domain errors -> `ErrorAnswer` (status, code, Retry-After).
Every error becomes a JSON body `{"error": {"code", "message", "fields"?}}` with its status.
Nothing here ever answers 500 with a stack trace: unknown exceptions become a logged, opaque 500.

The same module documents those answers: `ErrorResponse` is the body's model and `error_responses`
gives the `responses=` entries for a route, so the OpenAPI document states what the code does.
`json_request_body` documents a request body that the handler parses itself (the Powertools
validation middleware would parse numbers as floats; the order model needs exact decimals).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError

from orderpipe_common.errors import DomainError
from orderpipe_common.identity import SCOPE_READ, SCOPE_READ_ALL, SCOPE_WRITE
from orderpipe_common.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse


class HttpError(Exception):
    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        fields: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
        status: HTTPStatus | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.retry_after = retry_after
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class MalformedJsonError(HttpError):
    status, code = HTTPStatus.BAD_REQUEST, "malformed_json"


class BadRequestError(HttpError):
    status, code = HTTPStatus.BAD_REQUEST, "bad_request"


class NotFoundError(HttpError):
    status, code = HTTPStatus.NOT_FOUND, "not_found"


class ConflictError(HttpError):
    status, code = HTTPStatus.CONFLICT, "conflict"


class PayloadTooLargeError(HttpError):
    status, code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large"


class UnsupportedMediaTypeError(HttpError):
    status, code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"


class UnprocessableError(HttpError):
    status, code = HTTPStatus.UNPROCESSABLE_ENTITY, "unprocessable"


class ServiceUnavailableError(HttpError):
    status, code = HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable"


class InternalError(HttpError):
    status, code = HTTPStatus.INTERNAL_SERVER_ERROR, "internal"


class FieldError(BaseModel):
    """One invalid field: a dotted path into the request body (`items.0.quantity`), or `body`."""

    model_config = ConfigDict(extra="forbid")

    field: str
    message: str
    type: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    fields: list[FieldError] | None = None


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request (e.g. the body is not JSON, or an object repeats a key); nothing was enqueued.",
    401: "From API Gateway: no valid credential (missing, malformed, forged or expired token; `error.code` "
    "UNAUTHORIZED). Get a new access token and retry.",
    403: "From API Gateway: the credential is valid but not for this (a missing scope, a revoked producer, "
    "a bad SigV4 signature or API key: `error.code` names which), or no such route "
    "(MISSING_AUTHENTICATION_TOKEN: check the base URL and its stage).",
    404: "No such resource.",
    409: "The Idempotency-Key is taken: by a request still in progress (`error.code` conflict; retry "
    "after `Retry-After` seconds), or by another body (idempotency_key_reused; no Retry-After: a new "
    "request needs a new key).",
    413: "The body is larger than the documented maximum; nothing was enqueued.",
    415: "The Content-Type is not application/json; nothing was enqueued.",
    422: "The body is JSON but not valid; `error.fields` names each invalid field. Nothing was enqueued.",
    429: "From API Gateway: the usage plan's rate (THROTTLED) or daily quota (QUOTA_EXCEEDED) is used up. "
    "Back off and retry (a quota resets the next day).",
    500: "An unexpected error (a bug, logged with the request id); send the same request again later.",
    502: "From API Gateway: the function failed or gave no valid answer (INTEGRATION_FAILURE); send the "
    "same request again (with its Idempotency-Key, a retry is safe).",
    503: "A backing service (or the gateway's authorizer: AUTHORIZER_FAILURE) is unavailable; nothing "
    "was accepted. Retry after `Retry-After` seconds.",
    504: "From API Gateway: the function did not answer within the integration timeout "
    "(INTEGRATION_TIMEOUT); send the same request again (with its Idempotency-Key, a retry is safe).",
}

# What API Gateway itself may answer in front of every operation (stacks/api.py renders its bodies in
# the same `{"error": {"code", "message"}}` shape, and 503 + Retry-After when its authorizer cannot
# decide; the local emulator answers alike); 500 is also a function's answer to a bug.
# `error_responses` documents them on every route.
GATEWAY_ERROR_STATUSES = (401, 403, 413, 429, 500, 502, 503, 504)

_RETRY_AFTER_STATUSES = frozenset({409, 503})


def error_responses(
    statuses: Iterable[int],
    *,
    descriptions: dict[int, str] | None = None,
    retry_after: Iterable[int] = _RETRY_AFTER_STATUSES,
) -> dict[int, OpenAPIResponse]:
    """OpenAPI `responses` entries (all with `ErrorResponse`) for the error statuses a route's function
    answers, plus API Gateway's own (GATEWAY_ERROR_STATUSES); those in `retry_after` carry a
    `Retry-After` header."""
    texts = {**_ERROR_DESCRIPTIONS, **(descriptions or {})}
    with_retry_after = frozenset(retry_after)
    responses: dict[int, OpenAPIResponse] = {}
    for status in sorted({*statuses, *GATEWAY_ERROR_STATUSES}):
        response: OpenAPIResponse = {
            "description": texts.get(status, HTTPStatus(status).phrase),
            "content": {content_types.APPLICATION_JSON: {"model": ErrorResponse}},
        }
        if status in with_retry_after:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0},
                }
            }
        responses[status] = response
    return responses


def json_request_body(
    model: type[BaseModel], *, description: str, many: bool = False, max_items: int | None = None
) -> dict[str, Any]:
    """An OpenAPI `requestBody` (for a route's `openapi_extensions=`) referring to `model`'s component.

    `many`: a JSON array of which at least one item is a valid `model` (`contains`): the others are
    answered one by one as rejected, so the document must not refuse them (and a body with no valid
    item is refused, so the document must not allow it).

    The OpenAPI generator (devenv/orderpipe_devenv/openapi.py) adds the model's schema to the components;
    list the model among the module's `OPENAPI_COMPONENT_MODELS`.
    """
    reference = {"$ref": f"#/components/schemas/{model.__name__}"}
    schema: dict[str, Any] = reference
    if many:
        schema = {"type": "array", "contains": reference, "minItems": 1}
        if max_items is not None:
            schema["maxItems"] = max_items
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {content_types.APPLICATION_JSON: {"schema": schema}},
        }
    }


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


# How a producer authenticates, by the stack's auth mode (API Gateway enforces it before any function
# runs; the OpenAPI document says so for every operation):
# - jwt (default): an OAuth 2.0 access token from the client-credentials grant, with the route's
#   scope; the usage-plan API key comes from the authorizer, the producer sends none;
# - iam: a SigV4 signature (service execute-api) and the producer's usage-plan API key.
# The oauth2 scheme's tokenUrl: relative, so it resolves against wherever the document is served.
# Deployed, no such route exists (the token endpoint is the stack's TokenUrl output, on Cognito);
# the local runtime's docs site forwards it to its local issuer, so /docs can Authorize.
OAUTH2_TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret


def security_schemes() -> dict[str, Any]:
    """The OpenAPI security schemes (for the generator, which calls it; no function does).

    A function, not a constant: Powertools' OpenAPI models they are made of cost a function
    ~300 ms of cold init (docs/benchmarks.md, cold_init), and only the OpenAPI generator needs them.
    """
    from aws_lambda_powertools.event_handler.openapi.models import (
        APIKey,
        APIKeyIn,
        OAuth2,
        OAuthFlowClientCredentials,
        OAuthFlows,
    )

    return {
        "oauth2": OAuth2(
            description="OAuth 2.0 client credentials (mode jwt, the default). The token endpoint is "
            "not the API's: it is the stack's TokenUrl output (Cognito) or your issuer's, and locally "
            "the one `orderpipe run` prints. The tokenUrl below is relative to where this document is "
            "served: the local pipeline's /docs forwards it to its issuer; elsewhere get a token from "
            "the token endpoint and send it as `Authorization: Bearer`.",
            flows=OAuthFlows(
                clientCredentials=OAuthFlowClientCredentials(
                    tokenUrl=OAUTH2_TOKEN_PATH,
                    scopes={
                        SCOPE_WRITE: "submit orders",
                        SCOPE_READ: "read the producer's own orders",
                        SCOPE_READ_ALL: "read every producer's orders",
                    },
                )
            ),
        ),
        "sigv4": APIKey(
            name="Authorization",
            in_=APIKeyIn.header,
            description="AWS Signature Version 4 for service execute-api (mode iam).",
            openapi_extensions={"x-amazon-apigateway-authtype": "awsSigv4"},
        ),
        "apiKey": APIKey(
            name="x-api-key",
            in_=APIKeyIn.header,
            description="The producer's usage-plan key (mode iam only).",
        ),
    }


def security_requirements(scope: str) -> list[dict[str, list[str]]]:
    """A route's security: a token with `scope` (jwt), or SigV4 plus the usage-plan key (iam)."""
    return [{"oauth2": [scope]}, {"sigv4": [], "apiKey": []}]


def json_answer[M: BaseModel](
    status: HTTPStatus, model: M, *, headers: dict[str, str] | None = None
) -> Response[M]:
    """A JSON answer from a model (None fields left out); the annotation feeds the OpenAPI document."""
    answer = Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump_json(exclude_none=True),
        headers=headers,
    )
    return cast("Response[M]", answer)


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


def _powertools_field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    fields = []
    for detail in errors:
        location = [str(part) for part in detail.get("loc", ())]
        if location and location[0] in {"body", "path", "query", "header"} and len(location) > 1:
            location = location[1:]  # "body.items.0.sku" -> "items.0.sku"
        fields.append(
            {
                "field": ".".join(location) or "body",
                "message": str(detail.get("msg", "invalid")),
                "type": str(detail.get("type", "value_error")),
            }
        )
    return fields


@dataclass(frozen=True)
class ErrorAnswer:
    """How a handler answers a domain error: status, code, and Retry-After seconds where retrying helps
    (a callable, so the value is read from the function's settings when answering)."""

    status: HTTPStatus
    code: str
    retry_after: Callable[[], int] | None = None

    def to_http(self, error: Exception) -> HttpError:
        return HttpError(
            str(error),
            fields=getattr(error, "fields", None),
            retry_after=self.retry_after() if self.retry_after is not None else None,
            status=self.status,
            code=self.code,
        )


def register_error_handlers(
    app: APIGatewayRestResolver, domain_errors: Mapping[type[DomainError], ErrorAnswer] | None = None
) -> None:
    """JSON error answers for `app`: HTTP errors, validation errors, the handler's domain errors, 500."""
    for error_type, answer in (domain_errors or {}).items():

        def _domain_error(error: Exception, answer: ErrorAnswer = answer) -> Response:
            http_error = answer.to_http(error)
            details = {"status": int(http_error.status), "code": http_error.code}
            if http_error.status >= HTTPStatus.INTERNAL_SERVER_ERROR:  # a dependency failed: say which, how
                logger.warning("request not served", extra=details, exc_info=error)
            else:
                logger.info("request refused", extra=details)
            return error_response(http_error)

        app.exception_handler(error_type)(_domain_error)

    @app.exception_handler(RequestValidationError)
    def _request_validation_error(error: RequestValidationError) -> Response:
        # Only reached by routes that use Powertools' own validation (typed path/query parameters).
        return error_response(
            UnprocessableError("the request is not valid", fields=_powertools_field_errors(error.errors()))
        )

    @app.exception_handler(HttpError)
    def _http_error(error: HttpError) -> Response:
        logger.info("request refused", extra={"status": int(error.status), "code": error.code})
        return error_response(error)

    @app.exception_handler(ValidationError)
    def _validation_error(error: ValidationError) -> Response:
        return error_response(
            UnprocessableError("the request is not a valid order", fields=field_errors(error))
        )

    @app.not_found
    def _no_route(_: Exception) -> Response:
        return error_response(NotFoundError("no such route"))

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unexpected error")
        return error_response(InternalError("internal error; the request was not processed"))
