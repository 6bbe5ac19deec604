"""Who is calling: the producer identity the gateway established, as the functions read it.

The gateway authenticates every request before a function runs, in one of two modes
(`orderpipe:auth`):
- `jwt`: the authorizer function verifies an OAuth 2.0 access token and hands the producer and its
  scopes to the function in `requestContext.authorizer` (the keys below);
- `iam`: API Gateway verifies the SigV4 signature and names the caller in
  `requestContext.identity.userArn`.
Functions never take a producer from the body or a header. A request that reaches a function without
either identity (a misconfigured gateway) is refused, not served anonymously.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orderpipe_common.errors import DomainError

# OAuth 2.0 scopes of the orders resource server (Cognito writes them `<server>/<scope>`).
RESOURCE_SERVER = "orders"
SCOPE_WRITE = f"{RESOURCE_SERVER}/write"
SCOPE_READ = f"{RESOURCE_SERVER}/read"
SCOPE_READ_ALL = f"{RESOURCE_SERVER}/read-all"
ALL_SCOPES: tuple[str, ...] = (SCOPE_WRITE, SCOPE_READ, SCOPE_READ_ALL)

# Each route and the scope it needs (`orders/read-all` also grants `orders/read`). The authorizer
# allows every route a token's scopes cover, so API Gateway's cached policy is right for all of them.
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("POST", "/orders"): SCOPE_WRITE,
    ("POST", "/orders/batch"): SCOPE_WRITE,
    ("GET", "/orders/*"): SCOPE_READ,
}

# Keys of the authorizer's context (API Gateway passes only strings, numbers and booleans).
CONTEXT_PRODUCER = "producer"
CONTEXT_SCOPES = "scopes"
CONTEXT_READ_ALL = "readAll"

# API Gateway's own answers to a request it refuses before any function runs, as the stack configures
# them (stacks/api.py: one gateway response each, body `{"error": {"code", "message"}}`) and the
# local gateway answers them: response type -> (status, headers). An authorizer that cannot decide
# (issuer keys or producers table unreachable) is a bad day, not a bug: 503 + Retry-After, as the
# functions answer when a dependency is down. In jwt mode a 401 names the scheme the API takes
# (RFC 6750: `WWW-Authenticate: Bearer`); iam mode has no 401 (API Gateway refuses SigV4 with 403s).
AUTHORIZER_FAILURE_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: Mapping[str, str]


def gateway_responses(auth_mode: str) -> dict[str, GatewayResponse]:
    """The gateway responses the stack sets for `auth_mode` beyond the JSON body of every 4XX/5XX."""
    cannot_decide = GatewayResponse(503, {"Retry-After": str(AUTHORIZER_FAILURE_RETRY_AFTER_SECONDS)})
    responses = {"AUTHORIZER_FAILURE": cannot_decide, "AUTHORIZER_CONFIGURATION_ERROR": cannot_decide}
    if auth_mode == "jwt":
        responses["UNAUTHORIZED"] = GatewayResponse(401, {"WWW-Authenticate": "Bearer"})
    return responses


# A producer name: what `orderpipe producers add` accepts and what orders carry.
PRODUCER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/+=,-]{0,255}$"
_PRODUCER = re.compile(PRODUCER_PATTERN)
_ASSUMED_ROLE = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$"
)


class UnauthenticatedError(DomainError):
    """The request carries no producer identity from the gateway."""


@dataclass(frozen=True)
class Caller:
    """The authenticated producer behind one request."""

    producer: str
    read_all: bool
    request_id: str
    source_ip: str

    def audit(self) -> dict[str, str]:
        """The fields every audit log line carries (never a token or key value)."""
        return {"producer": self.producer, "request_id": self.request_id, "source_ip": self.source_ip}


def granted_scopes(raw: Any) -> frozenset[str]:
    """Scopes from a token claim or the authorizer context: a space-separated string or a list."""
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, Iterable):
        return frozenset(str(scope) for scope in raw)
    return frozenset()


def allows(scopes: frozenset[str], needed: str) -> bool:
    return needed in scopes or (needed == SCOPE_READ and SCOPE_READ_ALL in scopes)


def principal_of_arn(arn: str) -> str:
    """An IAM caller's stable identity: a role session's ARN becomes the role's (sessions come and go)."""
    assumed = _ASSUMED_ROLE.match(arn)
    if assumed:
        return f"arn:{assumed['partition']}:iam::{assumed['account']}:role/{assumed['role']}"
    return arn


def authorizer_context(producer: str, scopes: Iterable[str]) -> dict[str, str]:
    """What the authorizer hands the functions (also used by tests to build events)."""
    granted = sorted(set(scopes))
    return {
        CONTEXT_PRODUCER: producer,
        CONTEXT_SCOPES: " ".join(granted),
        CONTEXT_READ_ALL: "true" if SCOPE_READ_ALL in granted else "false",
    }


def caller_from_event(event: Mapping[str, Any], *, read_all_principals: Iterable[str] = ()) -> Caller:
    """The producer of a REST proxy event, from the authorizer context or the IAM identity.

    `read_all_principals` are the IAM principals that may read every producer's orders (IAM mode has
    no scopes); in JWT mode that is the `orders/read-all` scope.
    """
    context = event.get("requestContext") or {}
    identity = context.get("identity") or {}
    request_id = str(context.get("requestId") or "")
    source_ip = str(identity.get("sourceIp") or "")
    authorizer = context.get("authorizer") or {}
    producer = authorizer.get(CONTEXT_PRODUCER)
    if isinstance(producer, str) and _PRODUCER.fullmatch(producer):
        read_all = str(authorizer.get(CONTEXT_READ_ALL, "false")).lower() == "true"
        return Caller(producer=producer, read_all=read_all, request_id=request_id, source_ip=source_ip)
    user_arn = identity.get("userArn")
    if isinstance(user_arn, str) and user_arn.startswith("arn:"):
        principal = principal_of_arn(user_arn)
        return Caller(
            producer=principal,
            read_all=principal in set(read_all_principals),
            request_id=request_id,
            source_ip=source_ip,
        )
    raise UnauthenticatedError("the request carries no producer identity")
