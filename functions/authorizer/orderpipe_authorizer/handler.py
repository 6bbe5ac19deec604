"""Authorizer Lambda: an API Gateway REQUEST authorizer for OAuth 2.0 bearer tokens.

A thin handler: take the `Authorization` header, decide (logic.authorize) and answer in API
Gateway's authorizer shape. The policy lists every route the token's scopes allow, not only the one
requested: API Gateway caches the answer per token (for the TTL the stack sets) and applies it to
every route. The producer goes to the functions as the principal and in the context; the producer's
usage-plan key as `usageIdentifierKey` (the API's key source is AUTHORIZER), so usage plans meter
producers that hold only client credentials.

Answers: raising "Unauthorized" makes API Gateway answer 401 (no or bad token); a policy that allows
nothing, 403. When the issuer's keys or the producers table cannot be read, the handler raises
another error: API Gateway answers with its AUTHORIZER_FAILURE response (503 + Retry-After, stack).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orderpipe_authorizer.logic import Decision, authorize
from orderpipe_authorizer.producers import RegistryUnavailableError, get_registry
from orderpipe_authorizer.settings import get_settings
from orderpipe_authorizer.tokens import InvalidTokenError, IssuerUnavailableError, get_verifier
from orderpipe_common.deadlines import Deadline
from orderpipe_common.observability import logger, metrics
from orderpipe_common.per_process import init_done

# The exact message API Gateway turns into a 401.
UNAUTHORIZED = "Unauthorized"
# Kept back from the function's timeout to log and answer.
ANSWER_RESERVE_SECONDS = 0.5


class AuthorizerUnavailableError(RuntimeError):
    """A dependency of the decision is down (API Gateway: AUTHORIZER_FAILURE)."""


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _audit(event: dict[str, Any]) -> dict[str, Any]:
    context = event.get("requestContext") or {}
    return {
        "request_id": context.get("requestId"),
        "source_ip": (context.get("identity") or {}).get("sourceIp"),
        "route": f"{event.get('httpMethod')} {event.get('resource')}",
    }


def route_arn(method_arn: str, method: str, path: str) -> str:
    """`arn:aws:execute-api:region:account:api/stage/METHOD/path` for a route of the same stage."""
    api_and_stage = "/".join(method_arn.split("/", 2)[:2])
    return f"{api_and_stage}/{method}{path}"


def policy(decision: Decision, method_arn: str) -> dict[str, Any]:
    statements: list[dict[str, Any]]
    if decision.routes:
        statements = [
            {
                "Action": "execute-api:Invoke",
                "Effect": "Allow",
                "Resource": [route_arn(method_arn, method, path) for method, path in decision.routes],
            }
        ]
    else:
        statements = [
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": route_arn(method_arn, "*", "/*")}
        ]
    answer: dict[str, Any] = {
        "principalId": decision.principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        "context": decision.context,
    }
    if decision.usage_key:
        answer["usageIdentifierKey"] = decision.usage_key
    return answer


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    try:
        decision = authorize(
            _header(event, "authorization"),
            verifier=get_verifier(),
            registry=get_registry(),
            principal_claim=settings.auth_principal_claim,
            scope_claim=settings.auth_scope_claim,
            deadline=Deadline.of_invocation(
                context, reserve_seconds=ANSWER_RESERVE_SECONDS, budget_seconds=settings.answer_budget_seconds
            ),
        )
    except InvalidTokenError as error:
        # Audit: who tried, from where; never the token itself.
        logger.warning("credential refused", extra={**_audit(event), "reason": error.message, "status": 401})
        raise Exception(UNAUTHORIZED) from None
    except (IssuerUnavailableError, RegistryUnavailableError) as error:
        logger.error("authorizer cannot decide", extra={**_audit(event), "reason": error.message})
        raise AuthorizerUnavailableError(error.message) from None
    if decision.refusal:
        logger.warning(
            "credential refused",
            extra={
                **_audit(event),
                "producer": decision.principal,
                "reason": decision.refusal,
                "status": 403,
            },
        )
    return policy(decision, event["methodArn"])


init_done()
