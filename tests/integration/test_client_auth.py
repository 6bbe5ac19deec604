"""The client's auth modes against the scripted API on 127.0.0.1: API key, OAuth bearer, SigV4."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.credentials import Credentials

from orderpipe_client import (
    ApiKeyAuth,
    AuthenticationError,
    BearerTokenAuth,
    ClientCredentialsTokenProvider,
    OrderpipeClient,
    RetryPolicy,
    SigV4Auth,
    TokenRequestError,
)
from tests.scripted_orders_api import ScriptedOrdersApi, order

pytestmark = pytest.mark.timeout(60)

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, deadline=10)


@pytest.fixture
def api() -> Iterator[ScriptedOrdersApi]:
    server = ScriptedOrdersApi(api_key="key", bearer_tokens=set())
    server.start()
    yield server
    server.stop()


def provider_for(api: ScriptedOrdersApi, **kwargs: Any) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(
        f"{api.url}/oauth2/token",
        "client-id",
        "client-secret",
        scopes=["orders/write"],
        **kwargs,
    )


def test_one_token_serves_many_requests_with_the_api_key_alongside(api: ScriptedOrdersApi) -> None:
    # Given a client with an API key and a client-credentials bearer token
    with OrderpipeClient(
        api.url, auth=[ApiKeyAuth("key"), BearerTokenAuth(provider_for(api))], retry=FAST
    ) as client:
        # When it submits three orders
        for n in range(3):
            client.submit(order(f"po-{n}"))
    # Then it fetched one token and sent both credentials each time
    assert api.token_requests == 1
    assert {(p.headers.get("x-api-key"), p.headers.get("authorization")) for p in api.posts("/orders")} == {
        ("key", "Bearer token-1")
    }


def test_a_refused_token_is_replaced_once_and_the_request_goes_through(api: ScriptedOrdersApi) -> None:
    # Given a client holding a token the API then stops accepting
    provider = provider_for(api)
    with OrderpipeClient(api.url, api_key="key", auth=BearerTokenAuth(provider), retry=FAST) as client:
        client.submit(order("po-1"))
        assert api.bearer_tokens is not None
        api.bearer_tokens.discard("token-1")
        # When it submits again
        accepted = client.submit(order("po-2"))
    # Then the 401 made it fetch a second token, and the order was stored once
    assert api.token_requests == 2
    assert [p.outcome for p in api.posts("/orders")] == ["202", "401", "202"]
    assert api.stored_by_reference()["po-2"] == {accepted.order_id}


def test_a_token_is_refreshed_shortly_before_it_expires(api: ScriptedOrdersApi) -> None:
    # Given tokens that live 100 s, refreshed 30 s early, and a clock the test moves
    api.token_lifetime = 100
    now = [0.0]
    provider = provider_for(api, refresh_margin=30.0, clock=lambda: now[0])
    # Then the token is reused until 70 s, and replaced after
    assert provider.token() == "token-1"
    now[0] = 69.0
    assert provider.token() == "token-1"
    now[0] = 71.0
    assert provider.token() == "token-2"
    assert api.token_requests == 2


def test_wrong_client_credentials_are_reported_not_retried(api: ScriptedOrdersApi) -> None:
    provider = ClientCredentialsTokenProvider(f"{api.url}/oauth2/token", "client-id", "wrong")
    with (
        OrderpipeClient(api.url, api_key="key", auth=BearerTokenAuth(provider), retry=FAST) as client,
        pytest.raises(TokenRequestError, match="HTTP 401: invalid_client"),
    ):
        client.submit(order("po-1"))
    assert api.posts("/orders") == []


def test_a_wrong_api_key_is_an_authentication_error_after_one_request() -> None:
    server = ScriptedOrdersApi(api_key="key")
    server.start()
    try:
        with (
            OrderpipeClient(server.url, api_key="nope", retry=FAST) as client,
            pytest.raises(AuthenticationError, match="HTTP 403"),
        ):
            client.submit(order("po-1"))
        assert len(server.posts()) == 1
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/orders", "/orders/batch"])
def test_sigv4_signatures_verify_on_the_server_for_posts(path: str) -> None:
    # Given an API that checks SigV4 signatures (and the API key) with the secret it shares
    server = ScriptedOrdersApi(api_key="key", sigv4_secret="secret")
    server.start()
    credentials = Credentials("AKIDEXAMPLE", "secret", "session-token")
    try:
        with OrderpipeClient(
            server.url, api_key="key", auth=SigV4Auth("eu-west-1", credentials=credentials), retry=FAST
        ) as client:
            # When orders are posted and read back, signed
            if path == "/orders":
                accepted = client.submit(order("po-1"))
                client.get(accepted.order_id)
            else:
                client.submit_batch([order("po-1"), order("po-2")])
        # Then every signature the server recomputed matched, over the body and the API key
        assert server.signature_checks and all(server.signature_checks)
        signed = {p.headers["authorization"].split("SignedHeaders=")[1].split(",")[0] for p in server.posts()}
        assert signed == {"content-type;host;idempotency-key;x-amz-date;x-amz-security-token;x-api-key"}
    finally:
        server.stop()


def test_a_sigv4_signature_with_the_wrong_secret_is_refused() -> None:
    server = ScriptedOrdersApi(sigv4_secret="the-real-secret")
    server.start()
    try:
        auth = SigV4Auth("eu-west-1", credentials=Credentials("AKIDEXAMPLE", "a-wrong-secret"))
        with OrderpipeClient(server.url, auth=auth, retry=FAST) as client, pytest.raises(AuthenticationError):
            client.submit(order("po-1"))
        assert server.signature_checks == [False]
    finally:
        server.stop()


def test_bearer_and_sigv4_cannot_be_combined() -> None:
    sigv4 = SigV4Auth("eu-west-1", credentials=Credentials("AKIDEXAMPLE", "secret"))
    with pytest.raises(ValueError, match="Authorization header"):
        OrderpipeClient("http://127.0.0.1:9", auth=[BearerTokenAuth("token"), sigv4])
