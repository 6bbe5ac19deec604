"""How the API Gateway emulator authenticates a request, as the deployed API does (`orderpipe:auth`).

- `LambdaRequestAuthorizer` (`jwt`): the real authorizer function, invoked with a REQUEST authorizer
  event, its answer cached per `Authorization` header for the stack's TTL; the returned policy is
  evaluated against the request's method ARN (explicit Deny wins); the producer's
  `usageIdentifierKey` must be an enabled API key of the usage plan (API key source AUTHORIZER).
- `SigV4Verifier` (`iam`): recomputes the request's AWS Signature Version 4 with botocore from the
  caller's secret and compares; the caller's ARN becomes `requestContext.identity.userArn`; the
  `x-api-key` header must be an enabled key of the usage plan (API key source HEADER).

Refusals carry API Gateway's response type, its default status and message; the gateway renders them
as the deployed API does: the body `{"error": {"code": <response type>, "message": ...}}`, and the
status and headers the stack sets for that response type (orderpipe_common.identity.gateway_responses).
"""

from __future__ import annotations

import fnmatch
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Protocol

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from orderpipe_devenv.lambda_events import ACCOUNT_ID, REGION

log = logging.getLogger("orderpipe.api")

API_ID = "orderpipe"
# SigV4: a signature older or newer than this is refused, as AWS does.
SIGNATURE_MAX_SKEW = timedelta(minutes=5)
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"


class GatewayRefusalError(Exception):
    """An answer the gateway gives itself (no function runs): status, response type, message."""

    def __init__(
        self, status: int, response_type: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {response_type}: {message}")
        self.status, self.response_type, self.message = int(status), response_type, message
        self.headers = dict(headers or {})


def unauthorized() -> GatewayRefusalError:
    return GatewayRefusalError(HTTPStatus.UNAUTHORIZED, "UNAUTHORIZED", "Unauthorized")


def access_denied() -> GatewayRefusalError:
    return GatewayRefusalError(
        HTTPStatus.FORBIDDEN, "ACCESS_DENIED", "User is not authorized to access this resource"
    )


def invalid_api_key() -> GatewayRefusalError:
    return GatewayRefusalError(HTTPStatus.FORBIDDEN, "INVALID_API_KEY", "Forbidden")


def missing_authentication_token() -> GatewayRefusalError:
    return GatewayRefusalError(
        HTTPStatus.FORBIDDEN, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token"
    )


@dataclass(frozen=True)
class GatewayRequest:
    method: str
    path: str
    query: str
    resource: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    source_ip: str
    request_id: str
    stage: str
    host: str

    @property
    def method_arn(self) -> str:
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{self.stage}/{self.method}{self.path}"


@dataclass(frozen=True)
class Admission:
    """What the gateway adds to the function's event for an admitted request."""

    authorizer: dict[str, Any] | None = None
    user_arn: str | None = None
    access_key: str | None = None
    api_key: str | None = None


class GatewayAuth(Protocol):
    mode: str

    def admit(self, request: GatewayRequest) -> Admission:
        """Admission, or raise GatewayRefusalError."""
        ...


class UsagePlanKeys:
    """The enabled API key values of the usage plan (moto's API Gateway), re-read at most every second."""

    def __init__(self, list_keys: Callable[[], set[str]], *, max_age_seconds: float = 1.0) -> None:
        self._list_keys = list_keys
        self._max_age = max_age_seconds
        self._keys: set[str] = set()
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def __contains__(self, value: object) -> bool:
        with self._lock:
            if time.monotonic() - self._read_at > self._max_age:
                self._keys, self._read_at = self._list_keys(), time.monotonic()
            return value in self._keys


def usage_plan_keys(apigateway: Any, usage_plan_id: str) -> Callable[[], set[str]]:
    def list_keys() -> set[str]:
        values: set[str] = set()
        for key in apigateway.get_usage_plan_keys(usagePlanId=usage_plan_id, limit=500).get("items", []):
            detail = apigateway.get_api_key(apiKey=key["id"], includeValue=True)
            if detail.get("enabled", True):
                values.add(detail["value"])
        return values

    return list_keys


def _policy_allows(policy: Mapping[str, Any], method_arn: str) -> bool:
    allowed = False
    statements = policy.get("Statement") or []
    for statement in [statements] if isinstance(statements, dict) else statements:
        resources = statement.get("Resource") or []
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase(method_arn, pattern) for pattern in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


@dataclass
class _Cached:
    answer: dict[str, Any]
    expires: float


def request_authorizer_event(request: GatewayRequest) -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway sends for `request` (identity source: the header)."""
    return {
        "type": "REQUEST",
        "methodArn": request.method_arn,
        "resource": request.resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": dict(request.headers),
        "multiValueHeaders": {name: [value] for name, value in request.headers.items()},
        "queryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "httpMethod": request.method,
            "path": f"/{request.stage}{request.path}",
            "requestId": request.request_id,
            "resourcePath": request.resource,
            "stage": request.stage,
            "identity": {"sourceIp": request.source_ip, "userAgent": request.headers.get("user-agent")},
        },
    }


class LambdaRequestAuthorizer:
    """A REQUEST authorizer with identity source `method.request.header.Authorization`."""

    mode = "jwt"

    def __init__(
        self, *, invoke: Callable[[dict[str, Any]], Any], ttl_seconds: int, usage_keys: UsagePlanKeys
    ) -> None:
        self._invoke = invoke
        self.ttl_seconds = ttl_seconds
        self._usage_keys = usage_keys
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def _decide(self, request: GatewayRequest, identity: str) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(identity)
            if cached is not None and cached.expires > now:
                return cached.answer
        try:
            answer = self._invoke(request_authorizer_event(request))
        except Exception as error:
            if str(error) == "Unauthorized":  # the authorizer's way of saying 401; cached as well
                answer = {"unauthorized": True}
            else:
                log.warning("authorizer failed: %s", type(error).__name__)
                # API Gateway's default status; the gateway applies the stack's response (503 + Retry-After).
                raise GatewayRefusalError(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    "AUTHORIZER_FAILURE",
                    "The authorizer is unavailable; retry later",
                ) from None
        if self.ttl_seconds > 0:
            with self._lock:
                self._cache[identity] = _Cached(answer, now + self.ttl_seconds)
        return answer

    def admit(self, request: GatewayRequest) -> Admission:
        identity = request.headers.get("authorization", "")
        if not identity.strip():
            raise unauthorized()  # no identity source: API Gateway answers without calling the authorizer
        answer = self._decide(request, identity)
        if answer.get("unauthorized"):
            raise unauthorized()
        if not _policy_allows(answer.get("policyDocument") or {}, request.method_arn):
            raise access_denied()
        usage_key = answer.get("usageIdentifierKey")
        if not usage_key or usage_key not in self._usage_keys:
            raise invalid_api_key()
        context = {name: value for name, value in (answer.get("context") or {}).items()}
        return Admission(authorizer={**context, "principalId": answer.get("principalId")}, api_key=usage_key)


@dataclass(frozen=True)
class IamCredential:
    secret_access_key: str
    principal_arn: str


class LocalIamCredentials(Mapping[str, IamCredential]):
    """The access keys the local SigV4 verifier knows: those the runtime made itself, then those
    `orderpipe producers add` made on the emulator, whose secrets it keeps in the emulator's Secrets
    Manager (`<secrets>/<access key id>`, orderpipe_ops.producers). Found ones are remembered."""

    def __init__(self, made: Mapping[str, IamCredential], *, secretsmanager: Any, secrets: str) -> None:
        self._made = made
        self._secretsmanager = secretsmanager
        self._secrets = secrets
        self._found: dict[str, IamCredential] = {}
        self._lock = threading.Lock()

    def __getitem__(self, access_key: str) -> IamCredential:
        if access_key in self._made:
            return self._made[access_key]
        with self._lock:
            if access_key in self._found:
                return self._found[access_key]
        try:
            stored = json.loads(
                self._secretsmanager.get_secret_value(SecretId=f"{self._secrets}/{access_key}")[
                    "SecretString"
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                raise KeyError(access_key) from None
            raise
        credential = IamCredential(
            secret_access_key=stored["secret_access_key"], principal_arn=stored["principal_arn"]
        )
        with self._lock:
            self._found[access_key] = credential
        return credential

    def __iter__(self) -> Iterator[str]:
        return iter({**self._found, **self._made})

    def __len__(self) -> int:
        return len({**self._found, **self._made})


class SigV4Verifier:
    """AWS_IAM authorization: a valid SigV4 signature for `execute-api` from a known access key."""

    mode = "iam"

    def __init__(
        self, *, credentials: Mapping[str, IamCredential], usage_keys: UsagePlanKeys, region: str = REGION
    ) -> None:
        self._credentials = credentials
        self._usage_keys = usage_keys
        self._region = region

    def admit(self, request: GatewayRequest) -> Admission:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            raise missing_authentication_token()
        fields = dict(
            part.strip().split("=", 1)
            for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(",")
            if "=" in part
        )
        try:
            access_key, date, region, service, _terminal = fields["Credential"].split("/")
            signed_headers = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
            stamp = request.headers["x-amz-date"]
            signed_at = datetime.strptime(stamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
        except (KeyError, ValueError):
            raise GatewayRefusalError(
                HTTPStatus.FORBIDDEN, "INCOMPLETE_SIGNATURE", "Authorization header is malformed"
            ) from None
        credential = self._credentials.get(access_key)
        if credential is None:
            raise GatewayRefusalError(
                HTTPStatus.FORBIDDEN,
                "UNRECOGNIZED_CLIENT",
                "The security token included in the request is invalid.",
            )
        if abs(datetime.now(UTC) - signed_at) > SIGNATURE_MAX_SKEW:
            raise GatewayRefusalError(HTTPStatus.FORBIDDEN, "INVALID_SIGNATURE", "Signature expired")
        if (
            service != "execute-api"
            or region != self._region
            or date != stamp[:8]
            or "host" not in signed_headers
        ):
            raise GatewayRefusalError(
                HTTPStatus.FORBIDDEN, "INVALID_SIGNATURE", "Credential should be scoped correctly"
            )
        expected = self._signature(request, credential, signed_headers, stamp)
        if not hmac.compare_digest(expected, signature):
            raise GatewayRefusalError(
                HTTPStatus.FORBIDDEN,
                "INVALID_SIGNATURE",
                "The request signature we calculated does not match the signature you provided.",
            )
        api_key = request.headers.get("x-api-key")
        if not api_key or api_key not in self._usage_keys:
            raise invalid_api_key()
        return Admission(user_arn=credential.principal_arn, access_key=access_key, api_key=api_key)

    def _signature(
        self, request: GatewayRequest, credential: IamCredential, signed_headers: list[str], stamp: str
    ) -> str:
        url = f"http://{request.headers.get('host', request.host)}{request.path}"
        if request.query:
            url += f"?{request.query}"
        headers = {name: request.headers.get(name, "") for name in signed_headers}
        aws_request = AWSRequest(method=request.method, url=url, data=request.body, headers=headers)
        aws_request.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials("unused", credential.secret_access_key), "execute-api", self._region)
        canonical = signer.canonical_request(aws_request)
        return str(signer.signature(signer.string_to_sign(aws_request, canonical), aws_request))


def new_iam_credential(principal_arn: str) -> tuple[str, IamCredential]:
    """A fresh access key id and secret for a local IAM principal."""
    access_key = "AKIALOCAL" + uuid.uuid4().hex[:11].upper()
    return access_key, IamCredential(
        secret_access_key=uuid.uuid4().hex + uuid.uuid4().hex, principal_arn=principal_arn
    )
