"""How the test kit's HTTP clients authenticate: httpx auth flows for both gateway modes.

- `ClientCredentialsAuth` (jwt): an OAuth 2.0 access token from a token endpoint with the
  client-credentials grant (client_secret_basic), reused until a minute before it expires, fetched
  again once on a 401. Works against the local issuer, Cognito, Okta, Auth0 or Entra alike.
- `SigV4Auth` (iam): signs each request for `execute-api` with botocore and sends the usage-plan key.
- `for_producer(producer)`: the right one for a local runtime's `LocalProducer`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Protocol

import httpx
from botocore.auth import SigV4Auth as BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

# A token is replaced this long before it expires, so a request never carries one that just died.
REFRESH_MARGIN_SECONDS = 60


class RequestAuthenticator(Protocol):
    """Headers that authenticate one request (for clients that are not httpx, e.g. the load generator)."""

    def headers(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> dict[str, str]: ...


class TokenError(RuntimeError):
    """The token endpoint refused the client or did not answer."""


class ClientCredentialsAuth(httpx.Auth):
    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scopes: Sequence[str] = (),
        timeout: float = 10.0,
    ) -> None:
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.scopes = tuple(scopes)
        self._timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.tokens_fetched = 0

    def token(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or time.monotonic() >= self._expires - REFRESH_MARGIN_SECONDS:
                form = {"grant_type": "client_credentials"}
                if self.scopes:
                    form["scope"] = " ".join(self.scopes)
                try:
                    answer = httpx.post(
                        self.token_url,
                        data=form,
                        auth=(self._client_id, self._client_secret),
                        timeout=self._timeout,
                    )
                except httpx.HTTPError as error:
                    raise TokenError(f"token endpoint {self.token_url} unreachable: {error}") from error
                if answer.status_code != 200:
                    raise TokenError(f"token endpoint answered {answer.status_code}: {answer.text[:200]}")
                body = answer.json()
                self._token = str(body["access_token"])
                self._expires = time.monotonic() + float(body.get("expires_in", 3600))
                self.tokens_fetched += 1
            return self._token

    def headers(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        response = yield request
        if response.status_code == 401:  # expired or rotated keys: one fresh token, once
            request.headers["Authorization"] = f"Bearer {self.token(renew=True)}"
            yield request


class BearerTokenAuth(httpx.Auth):
    """A fixed access token (e.g. one printed by `orderpipe run`, or from your own issuer)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def headers(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class SigV4Auth(httpx.Auth):
    requires_request_body = True

    def __init__(
        self,
        *,
        access_key_id: str,
        secret_access_key: str,
        region: str,
        api_key: str | None,
        session_token: str | None = None,
    ) -> None:
        self._credentials = Credentials(access_key_id, secret_access_key, session_token)
        self._region = region
        self._api_key = api_key

    def headers(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """The signature headers (and the usage-plan key) for this request."""
        lower = {name.lower(): value for name, value in headers.items()}
        if self._api_key:
            lower["x-api-key"] = self._api_key
        signed: dict[str, str] = {
            name: lower[name] for name in ("content-type", "x-api-key") if name in lower
        }
        aws_request = AWSRequest(method=method, url=url, data=body or b"", headers=signed)
        BotocoreSigV4(self._credentials, "execute-api", self._region).add_auth(aws_request)
        added = {"x-api-key": self._api_key} if self._api_key else {}
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws_request.headers:
                added[name] = aws_request.headers[name]
        return added

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            self.headers(request.method, str(request.url), request.content, request.headers)
        )
        yield request


def for_producer(producer: Any, *, region: str = "us-east-1") -> ClientCredentialsAuth | SigV4Auth:
    """The auth flow for a local runtime's producer (orderpipe_devenv.runtime.pipeline.LocalProducer)."""
    if producer.auth == "iam":
        return SigV4Auth(
            access_key_id=producer.access_key_id,
            secret_access_key=producer.secret_access_key,
            region=region,
            api_key=producer.api_key,
        )
    return ClientCredentialsAuth(
        producer.token_url, producer.client_id, producer.client_secret, scopes=producer.scopes
    )
