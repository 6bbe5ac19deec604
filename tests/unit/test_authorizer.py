"""The authorizer's decisions on real RS256 tokens, with the issuer's keys and the producers table faked.

No network: the JWKS client is replaced by one that hands out the issuer's public key.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from orderpipe_authorizer.handler import policy, route_arn
from orderpipe_authorizer.logic import Decision, authorize
from orderpipe_authorizer.producers import Producer
from orderpipe_authorizer.settings import AuthorizerSettings
from orderpipe_authorizer.tokens import InvalidTokenError, IssuerUnavailableError, JwksTokenVerifier
from orderpipe_common.deadlines import Deadline
from orderpipe_common.identity import caller_from_event, principal_of_arn
from orderpipe_devenv.runtime.gateway_auth import _policy_allows

ISSUER = "https://issuer.example.com/pool"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/POST/orders"


class Jwks:
    """PyJWKClient's one method this code uses, serving KEY's public half (or failing)."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.timeout = 30.0  # PyJWKClient's default

    def get_signing_key_from_jwt(self, token: str) -> Any:
        if self.down:
            raise jwt.exceptions.PyJWKClientConnectionError("unreachable")
        header = jwt.get_unverified_header(token)
        if header.get("kid") != "k1":
            raise jwt.exceptions.PyJWKClientError("unknown kid")
        return jwt.PyJWK.from_dict(
            {**jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "kid": "k1"}
        )


class Registry:
    def __init__(self, producers: dict[str, Producer]) -> None:
        self.producers = producers

    def find(self, principal: str, deadline: Deadline) -> Producer | None:
        return self.producers.get(principal)


def settings(**overrides: Any) -> AuthorizerSettings:
    return AuthorizerSettings(
        auth_issuer=ISSUER, producers_table_name="producers", **{"auth_audience": "orderpipe", **overrides}
    )


def token(key: Any = KEY, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "client-1", "aud": "orderpipe", "iat": now, "exp": now + 600}
    body.update(claims)
    return jwt.encode(
        {k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": "k1"}
    )


REGISTRY = Registry(
    {
        "client-1": Producer(name="acme", active=True, usage_key="key-acme"),
        "client-2": Producer(name="gone", active=False, usage_key="key-gone"),
    }
)


def decide(header: str | None, *, verifier: Any = None, deadline: Deadline | None = None) -> Decision:
    return authorize(
        header,
        verifier=verifier or JwksTokenVerifier(settings(), jwks=Jwks()),  # type: ignore[arg-type]
        registry=REGISTRY,
        principal_claim="sub",
        scope_claim="scope",
        deadline=deadline or Deadline.after(2),
    )


def test_a_valid_token_allows_the_routes_of_its_scopes_and_names_producer_and_key() -> None:
    decision = decide(f"Bearer {token(scope='orders/write orders/read')}")
    assert decision.principal == "acme" and decision.usage_key == "key-acme"
    assert set(decision.routes) == {("POST", "/orders"), ("POST", "/orders/batch"), ("GET", "/orders/*")}
    assert decision.context == {"producer": "acme", "scopes": "orders/read orders/write", "readAll": "false"}


def test_read_all_grants_reading_and_says_so_in_the_context() -> None:
    decision = decide(f"Bearer {token(scope='orders/read-all')}")
    assert decision.routes == (("GET", "/orders/*"),)
    assert decision.context["readAll"] == "true"


@pytest.mark.parametrize(
    ("what", "header"),
    [
        ("no header", None),
        ("not bearer", "Basic abc"),
        ("garbage", "Bearer not-a-jwt"),
        (
            "forged signature",
            f"Bearer {token(rsa.generate_private_key(public_exponent=65537, key_size=2048))}",
        ),
        ("expired", f"Bearer {token(exp=int(time.time()) - 120)}"),
        ("wrong issuer", f"Bearer {token(iss='https://evil.example.com')}"),
        ("wrong audience", f"Bearer {token(aud='other-api')}"),
        ("no audience", f"Bearer {token(aud=None)}"),
        ("no subject", f"Bearer {token(sub=None)}"),
        ("an id token", f"Bearer {token(token_use='id')}"),
        (
            "HS256 instead of RS256",
            "Bearer "
            + jwt.encode(
                {"iss": ISSUER, "sub": "client-1", "aud": "orderpipe", "iat": 0, "exp": 2**40},
                "a-shared-secret-of-32-bytes-or-more",
                algorithm="HS256",
                headers={"kid": "k1"},
            ),
        ),
    ],
)
def test_a_token_that_proves_nothing_is_refused(what: str, header: str | None) -> None:
    with pytest.raises(InvalidTokenError):
        decide(header)


def test_unknown_or_revoked_clients_and_tokens_without_orders_scopes_allow_nothing() -> None:
    assert decide(f"Bearer {token(sub='client-9', scope='orders/write')}").routes == ()
    revoked = decide(f"Bearer {token(sub='client-2', scope='orders/write')}")
    assert revoked.routes == () and revoked.refusal and "revoked" in revoked.refusal
    assert decide(f"Bearer {token(scope='email profile')}").routes == ()


def test_an_issuer_without_audience_checks_no_aud_but_still_the_producers_table() -> None:
    verifier = JwksTokenVerifier(settings(auth_audience=None), jwks=Jwks())  # type: ignore[arg-type]
    assert decide(f"Bearer {token(aud=None, scope='orders/write')}", verifier=verifier).principal == "acme"


def test_unreachable_signing_keys_are_not_a_refusal() -> None:
    verifier = JwksTokenVerifier(settings(), jwks=Jwks(down=True))  # type: ignore[arg-type]
    with pytest.raises(IssuerUnavailableError):
        decide(f"Bearer {token(scope='orders/write')}", verifier=verifier)


def test_a_signing_key_fetch_waits_no_longer_than_the_decisions_deadline() -> None:
    # Given a verifier whose key fetches may take 1.5 s
    jwks = Jwks()
    verifier = JwksTokenVerifier(settings(auth_jwks_timeout_seconds=1.5), jwks=jwks)  # type: ignore[arg-type]
    # When a decision has 0.4 s left, then a fetch it needs may wait at most that
    decide(f"Bearer {token(scope='orders/write')}", verifier=verifier, deadline=Deadline.after(0.4))
    assert 0 < jwks.timeout <= 0.4
    # When it has more than enough, the setting bounds it
    decide(f"Bearer {token(scope='orders/write')}", verifier=verifier, deadline=Deadline.after(5))
    assert jwks.timeout == 1.5
    # When its time is up, it fails as "cannot decide" (the gateway's 503), not as a refusal
    with pytest.raises(IssuerUnavailableError):
        decide(f"Bearer {token(scope='orders/write')}", verifier=verifier, deadline=Deadline.after(0))


def test_the_policy_covers_every_allowed_route_of_the_stage_and_is_honoured_as_api_gateway_does() -> None:
    decision = decide(f"Bearer {token(scope='orders/read')}")
    answer = policy(decision, METHOD_ARN)
    assert answer["principalId"] == "acme" and answer["usageIdentifierKey"] == "key-acme"
    document = answer["policyDocument"]
    get_arn = route_arn(METHOD_ARN, "GET", "/orders/0b7f3a9e-0000-4000-8000-000000000000")
    assert _policy_allows(document, get_arn)
    assert not _policy_allows(document, METHOD_ARN)  # POST needs orders/write
    denied = policy(decide(f"Bearer {token(sub='client-2', scope='orders/write')}"), METHOD_ARN)
    assert not _policy_allows(denied["policyDocument"], METHOD_ARN)
    assert not _policy_allows(denied["policyDocument"], get_arn)


def test_functions_take_the_producer_from_the_gateway_never_from_elsewhere() -> None:
    from_authorizer = {
        "requestContext": {"authorizer": {"producer": "acme", "readAll": "true"}, "identity": {}}
    }
    assert caller_from_event(from_authorizer).producer == "acme"
    assert caller_from_event(from_authorizer).read_all
    session = "arn:aws:sts::123456789012:assumed-role/producer-role/session-42"
    from_iam = {"requestContext": {"identity": {"userArn": session, "sourceIp": "10.0.0.1"}}}
    caller = caller_from_event(from_iam, read_all_principals=["arn:aws:iam::123456789012:role/producer-role"])
    assert caller.producer == principal_of_arn(session) == "arn:aws:iam::123456789012:role/producer-role"
    assert caller.read_all and caller.source_ip == "10.0.0.1"
