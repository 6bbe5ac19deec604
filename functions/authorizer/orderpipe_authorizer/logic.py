"""Deciding what a bearer token may do: verify it, find its producer, map its scopes to routes.

Knows nothing of API Gateway's event or policy shapes (the handler builds those). Raises
InvalidTokenError for a token that proves nothing (the gateway answers 401); a verified token whose
client is no producer, or a revoked one, gets a decision that allows no route (403).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orderpipe_authorizer.producers import ProducerRegistry
from orderpipe_authorizer.tokens import InvalidTokenError, TokenVerifier
from orderpipe_common.deadlines import Deadline
from orderpipe_common.identity import ROUTE_SCOPES, allows, authorizer_context, granted_scopes
from orderpipe_common.observability import logger

BEARER = "bearer"
# The principal API Gateway logs for a decision that allows nothing.
NOBODY = "nobody"


@dataclass(frozen=True)
class Decision:
    principal: str
    # (method, resource path) pairs this token may call; empty: deny everything.
    routes: tuple[tuple[str, str], ...]
    context: dict[str, str] = field(default_factory=dict)
    usage_key: str | None = None
    refusal: str | None = None  # why nothing is allowed (for the audit log)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or InvalidTokenError."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        raise InvalidTokenError("expected an Authorization: Bearer <access token> header")
    return token.strip()


def authorize(
    authorization: str | None,
    *,
    verifier: TokenVerifier,
    registry: ProducerRegistry,
    principal_claim: str,
    scope_claim: str,
    deadline: Deadline,
) -> Decision:
    claims = verifier.verify(bearer_token(authorization), deadline)
    principal = claims.get(principal_claim)
    if not isinstance(principal, str) or not principal:
        raise InvalidTokenError(f"the token has no {principal_claim} claim")
    producer = registry.find(principal, deadline)
    if producer is None:
        return Decision(principal=NOBODY, routes=(), refusal=f"client {principal} is no producer")
    if not producer.active:
        return Decision(principal=producer.name, routes=(), refusal=f"producer {producer.name} is revoked")
    scopes = granted_scopes(claims.get(scope_claim))
    routes = tuple(route for route, needed in ROUTE_SCOPES.items() if allows(scopes, needed))
    if not routes:
        return Decision(principal=producer.name, routes=(), refusal="the token grants no orders scope")
    logger.debug("token accepted", extra={"producer": producer.name, "scopes": sorted(scopes)})
    return Decision(
        principal=producer.name,
        routes=routes,
        context=authorizer_context(producer.name, scopes),
        usage_key=producer.usage_key,
    )
