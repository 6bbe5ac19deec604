"""The events and context Lambda hands a function, built the way AWS builds them.

- API Gateway REST proxy events (payload v1): the local gateway emulator turns each real HTTP
  request into `rest_proxy_event(...)` and calls the real handler; tests do the same without a
  server. `proxy_response` reads a handler's answer back.
- SQS events as an event source mapping delivers them: `sqs_event_from_messages` from received
  messages (the local event source), `sqs_event_from_bodies` from made-up bodies (tests, benchmarks).
- CloudFormation custom resource events as the Provider framework hands them to an on-event
  handler (`custom_resource_event`): the local runtime applies the schema that way.
- `LocalLambdaContext`: enough of the Lambda context object for Powertools and the handlers,
  with a real deadline behind `get_remaining_time_in_millis()`.

    event = rest_proxy_event("POST", "/orders", headers={"Content-Type": "application/json"},
                             body='{"...": 1}', resource="/orders")
    answer = lambda_handler(event, LocalLambdaContext())
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

HeaderValues = Mapping[str, str | Sequence[str]]


def _multi(values: HeaderValues | None) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in (values or {}).items():
        result.setdefault(name, []).extend([value] if isinstance(value, str) else list(value))
    return result


def _template_regex(resource: str) -> re.Pattern[str]:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", resource):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):  # greedy proxy parameter, e.g. {proxy+}
                pattern += f"(?P<{name[:-1]}>.+)"
            else:
                pattern += f"(?P<{name}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(f"^{pattern}$")


def match_resource(resource: str, path: str) -> dict[str, str] | None:
    """The path parameters of `path` under the route template `resource`, or None if it does not match.

    `match_resource("/orders/{id}", "/orders/abc")` -> `{"id": "abc"}`; `{proxy+}` matches the rest.
    """
    found = _template_regex(resource).match(path)
    if found is None:
        return None
    names = [name.removesuffix("+") for name in re.findall(r"\{([^}]+)\}", resource)]
    return {
        original: unquote(found.group(name.removesuffix("+")))
        for original, name in zip(re.findall(r"\{([^}]+)\}", resource), names, strict=True)
    }


def rest_proxy_event(
    method: str,
    path: str,
    *,
    headers: HeaderValues | None = None,
    body: str | bytes | None = None,
    resource: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    query: HeaderValues | None = None,
    query_parameters: Mapping[str, str] | None = None,
    stage: str = "local",
    source_ip: str = "127.0.0.1",
    api_key: str | None = None,
    request_id: str | None = None,
    base64_encode: bool | None = None,
    authorizer: Mapping[str, Any] | None = None,
    user_arn: str | None = None,
    access_key: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API proxy integration event (payload format 1.0).

    `path` may carry a query string (merged with `query` / `query_parameters`, same meaning). `resource` is the route template
    (`/orders/{id}`), defaulting to `path`; path parameters are taken from it unless given. A bytes
    body that is not UTF-8 (or `base64_encode=True`) is sent base64-encoded, as API Gateway does
    for binary media types.
    """
    split = urlsplit(path)
    path_only = split.path or "/"
    query_values = _multi({**(query_parameters or {}), **(query or {})})
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        query_values.setdefault(name, []).append(value)
    header_values = _multi(headers)
    resource = resource or path_only
    if path_parameters is None:
        path_parameters = match_resource(resource, path_only) if "{" in resource else None
    if path_parameters is not None and not path_parameters:
        path_parameters = None

    is_base64 = bool(base64_encode)
    text: str | None
    if body is None:
        text = None
    elif isinstance(body, bytes):
        try:
            text = body.decode() if not base64_encode else None
        except UnicodeDecodeError:
            text = None
        if text is None:
            text, is_base64 = base64.b64encode(body).decode("ascii"), True
    else:
        text = base64.b64encode(body.encode()).decode("ascii") if base64_encode else body

    request_id = request_id or str(uuid.uuid4())
    now = datetime.now(UTC)
    user_agent = next(
        (values[-1] for name, values in header_values.items() if name.lower() == "user-agent"), None
    )
    host = next((values[-1] for name, values in header_values.items() if name.lower() == "host"), None)
    api_id = "orderpipe"
    return {
        "resource": resource,
        "path": path_only,
        "httpMethod": method.upper(),
        "headers": {name: values[-1] for name, values in header_values.items()} or None,
        "multiValueHeaders": header_values or None,
        "queryStringParameters": {name: values[-1] for name, values in query_values.items()} or None,
        "multiValueQueryStringParameters": query_values or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id,
            "domainName": host or f"{api_id}.execute-api.{REGION}.amazonaws.com",
            "domainPrefix": api_id,
            "extendedRequestId": request_id,
            "httpMethod": method.upper(),
            **({"authorizer": dict(authorizer)} if authorizer is not None else {}),
            "identity": {
                "accessKey": access_key,
                "accountId": ACCOUNT_ID if user_arn else None,
                "apiKey": api_key,
                "apiKeyId": None,
                "caller": user_arn.rsplit(":", 1)[-1] if user_arn else None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": source_ip,
                "user": None,
                "userAgent": user_agent,
                "userArn": user_arn,
            },
            "path": f"/{stage}{path_only}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": "local",
            "resourcePath": resource,
            "stage": stage,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


@dataclass(frozen=True)
class ProxyResponse:
    """A handler's proxy answer, decoded: status, headers (names lower-cased) and body text."""

    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def proxy_response(answer: Mapping[str, Any]) -> ProxyResponse:
    headers: dict[str, str] = {}
    for name, value in (answer.get("headers") or {}).items():
        headers[name.lower()] = str(value)
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ", ".join(str(v) for v in values)
    body = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return ProxyResponse(status=int(answer["statusCode"]), headers=headers, body=body)


@dataclass
class LocalLambdaContext:
    """Enough of the Lambda context object for Powertools and the handlers."""

    function_name: str = "orderpipe-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/orderpipe-local"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --- SQS events (event source mapping) ---------------------------------------------------------


def sqs_record(
    body: str,
    *,
    queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:orders",
    message_id: str | None = None,
    receipt_handle: str | None = None,
    attributes: Mapping[str, str] | None = None,
    message_attributes: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """`message_attributes` as SQS's API gives them (`{"name": {"DataType", "StringValue"}}`)."""
    now_ms = str(int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt_handle or f"local-{uuid.uuid4()}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now_ms,
            "SenderId": "AIDAORDERPIPELOCAL",
            "ApproximateFirstReceiveTimestamp": now_ms,
            **(attributes or {}),
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in (message_attributes or {}).items()
        },
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def sqs_event_from_bodies(bodies: Iterable[str], **kwargs: Any) -> dict[str, Any]:
    return {"Records": [sqs_record(body, **kwargs) for body in bodies]}


def sqs_event_from_messages(messages: Iterable[Mapping[str, Any]], *, queue_arn: str) -> dict[str, Any]:
    """From boto3 `receive_message` results (with AttributeNames and MessageAttributeNames ['All'])."""
    return {
        "Records": [
            sqs_record(
                message["Body"],
                queue_arn=queue_arn,
                message_id=message["MessageId"],
                receipt_handle=message["ReceiptHandle"],
                attributes=message.get("Attributes"),
                message_attributes=message.get("MessageAttributes"),
            )
            for message in messages
        ]
    }


# --- CloudFormation custom resource events (Provider framework, on-event handler) ------------------


def custom_resource_event(
    request_type: str,
    properties: Mapping[str, Any],
    *,
    physical_resource_id: str | None = None,
    old_properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event a CDK Provider framework passes to its on-event handler (Create, Update or Delete)."""
    stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/orderpipe-local/{uuid.uuid4()}"
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:orderpipe-local-provider",
        "ResponseURL": "http://127.0.0.1/unused",  # the framework answers CloudFormation, not the handler
        "StackId": stack_id,
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": "SchemaMigrations",
        "ResourceType": "Custom::OrderpipeSchema",
        "ResourceProperties": {"ServiceToken": "local", **properties},
    }
    if physical_resource_id is not None:
        event["PhysicalResourceId"] = physical_resource_id
    if old_properties is not None:
        event["OldResourceProperties"] = dict(old_properties)
    return event
