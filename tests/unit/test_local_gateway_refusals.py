"""The local API Gateway's own refusals have the deployed API's status, headers and body.

The gateway runs on loopback and is asked in process (`handle`); the authorizer function is a stub that answers as
the real one does (tests/e2e/test_identity.py runs the real one over HTTP).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from orderpipe_devenv.runtime.gateway import ApiGatewayEmulator, Route
from orderpipe_devenv.runtime.gateway_auth import LambdaRequestAuthorizer, SigV4Verifier, UsagePlanKeys


def authorizer_raising(message: str) -> Any:
    def invoke(_event: dict[str, Any]) -> Any:
        raise RuntimeError(message)

    return invoke


def never_invoked(_event: dict[str, Any]) -> Any:
    raise AssertionError("the function must not run for a refused request")


def gateway_with(auth: Any) -> Iterator[ApiGatewayEmulator]:
    emulator = ApiGatewayEmulator(routes=[Route("POST", "/orders", never_invoked)], auth=auth, port=0)
    emulator.start()  # stop() waits for the serving loop
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def refusing_authorizer() -> Iterator[ApiGatewayEmulator]:
    """jwt mode, the authorizer refusing every token as the real one refuses a bad one."""
    auth = LambdaRequestAuthorizer(
        invoke=authorizer_raising("Unauthorized"), ttl_seconds=0, usage_keys=UsagePlanKeys(set)
    )
    yield from gateway_with(auth)


@pytest.fixture
def failing_authorizer() -> Iterator[ApiGatewayEmulator]:
    """jwt mode, the authorizer failing (its issuer or table unreachable)."""
    auth = LambdaRequestAuthorizer(
        invoke=authorizer_raising("issuer unreachable"), ttl_seconds=0, usage_keys=UsagePlanKeys(set)
    )
    yield from gateway_with(auth)


@pytest.fixture
def iam_gateway() -> Iterator[ApiGatewayEmulator]:
    yield from gateway_with(SigV4Verifier(credentials={}, usage_keys=UsagePlanKeys(set)))


def post(
    gateway: ApiGatewayEmulator, headers: dict[str, str], path: str = "/orders"
) -> tuple[int, dict[str, str], Any]:
    status, answer_headers, body = gateway.handle("POST", path, headers, b"{}")
    return status, answer_headers, json.loads(body)


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer not-a-token"}],
    ids=["no Authorization header", "a token the authorizer refuses"],
)
def test_jwt_a_missing_or_refused_token_is_401_with_www_authenticate_bearer(
    refusing_authorizer: ApiGatewayEmulator, headers: dict[str, str]
) -> None:
    # Given the jwt-mode gateway
    # When a request comes without a token, or with one the authorizer refuses
    status, answer_headers, body = post(refusing_authorizer, headers)
    # Then the answer is the deployed one: 401, `WWW-Authenticate: Bearer`, the JSON error body
    assert status == 401
    assert answer_headers["WWW-Authenticate"] == "Bearer"
    assert answer_headers["Content-Type"] == "application/json"
    assert body == {"error": {"code": "UNAUTHORIZED", "message": "Unauthorized"}}


def test_jwt_an_authorizer_that_cannot_decide_is_503_with_retry_after(
    failing_authorizer: ApiGatewayEmulator,
) -> None:
    # Given an authorizer that fails (its issuer's keys or the producers table unreachable)
    # When a request comes with a token
    status, answer_headers, body = post(failing_authorizer, {"authorization": "Bearer some-token"})
    # Then the gateway answers as the stack configures AUTHORIZER_FAILURE: 503 + Retry-After, no challenge
    assert status == 503
    assert answer_headers["Retry-After"] == "5"
    assert "WWW-Authenticate" not in answer_headers
    assert body["error"]["code"] == "AUTHORIZER_FAILURE"


def test_unknown_routes_and_iam_refusals_carry_no_bearer_challenge(
    refusing_authorizer: ApiGatewayEmulator, iam_gateway: ApiGatewayEmulator
) -> None:
    # When an unknown route is asked for (jwt), or a request comes unsigned (iam)
    unknown = post(refusing_authorizer, {}, path="/nowhere")
    unsigned = post(iam_gateway, {})
    # Then both are API Gateway's 403 MISSING_AUTHENTICATION_TOKEN, without a WWW-Authenticate header
    for status, answer_headers, body in (unknown, unsigned):
        assert status == 403
        assert "WWW-Authenticate" not in answer_headers
        assert body["error"]["code"] == "MISSING_AUTHENTICATION_TOKEN"
