"""Authentication as httpx auth: API key, OAuth 2.0 bearer token (client credentials), AWS SigV4.

Combine them by passing several to the client (or `combine(...)`): header auths (the API key) are
applied first, then at most one auth that owns the `Authorization` header (bearer or SigV4), so a
SigV4 signature covers the API key too.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote_plus

import httpx

from orderpipe_client.errors import TokenRequestError

API_KEY_HEADER = "x-api-key"


class HeaderAuth(httpx.Auth):
    """An auth that only sets headers (no extra round trips): it can sit in front of another auth."""

    def apply(self, request: httpx.Request) -> None:
        raise NotImplementedError

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.apply(request)
        yield request


class ApiKeyAuth(HeaderAuth):
    """Sends the API Gateway API key as `x-api-key`."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the API key is empty")
        self._key = key

    def apply(self, request: httpx.Request) -> None:
        request.headers[API_KEY_HEADER] = self._key

    def __repr__(self) -> str:
        return "ApiKeyAuth(key=***)"


class TokenProvider(Protocol):
    """Gives a bearer token, and forgets one the API refused."""

    def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


class StaticToken:
    """A token obtained elsewhere (it is never refreshed)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        pass


@dataclass(frozen=True)
class _CachedToken:
    value: str
    refresh_at: float  # on the provider's clock; infinity when the server gave no expiry


class ClientCredentialsTokenProvider:
    """OAuth 2.0 client credentials grant (RFC 6749 section 4.4), with the token cached.

    The token is reused until `refresh_margin` seconds before it expires (`expires_in`), or until
    the API refuses it (then the next request fetches a new one). Thread-safe: concurrent requests
    share one fetch. The client authenticates with HTTP Basic (`client_secret_basic`) unless
    `credentials_in_body` asks for `client_secret_post`.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scopes: Sequence[str] = (),
        audience: str | None = None,
        refresh_margin: float = 60.0,
        credentials_in_body: bool = False,
        timeout: float = 10.0,
        attempts: int = 3,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token_url or not client_id:
            raise ValueError("a token URL and a client id are required")
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = tuple(scopes)
        self._audience = audience
        self._refresh_margin = refresh_margin
        self._credentials_in_body = credentials_in_body
        self._attempts = max(1, attempts)
        self._http = http or httpx.Client(timeout=timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _CachedToken | None = None
        self.fetches = 0  # how many tokens were requested (for logs and tests)

    def token(self) -> str:
        with self._lock:
            if self._cached is not None and self._clock() < self._cached.refresh_at:
                return self._cached.value
            self._cached = self._fetch()
            return self._cached.value

    def invalidate(self, token: str) -> None:
        with self._lock:
            # Only the refused token: another thread may already have replaced it.
            if self._cached is not None and self._cached.value == token:
                self._cached = None

    def _fetch(self) -> _CachedToken:
        form = {"grant_type": "client_credentials"}
        if self._scopes:
            form["scope"] = " ".join(self._scopes)
        if self._audience:
            form["audience"] = self._audience
        headers = {"accept": "application/json"}
        if self._credentials_in_body:
            form.update(client_id=self._client_id, client_secret=self._client_secret)
        else:
            headers["authorization"] = _basic_credentials(self._client_id, self._client_secret)
        last_error: str = ""
        for attempt in range(self._attempts):
            if attempt:
                time.sleep(0.2 * 2**attempt)
            try:
                self.fetches += 1
                started = self._clock()
                response = self._http.post(self._token_url, data=form, headers=headers)
            except httpx.TransportError as error:
                last_error = f"{type(error).__name__}: {error}"
                continue
            if response.status_code >= 500 or response.status_code == 429:
                last_error = f"HTTP {response.status_code}"
                continue
            return self._parse(response, started)
        raise TokenRequestError(f"the token endpoint {self._token_url} did not answer: {last_error}")

    def _parse(self, response: httpx.Response, started: float) -> _CachedToken:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            detail = ""
            if isinstance(body, dict) and "error" in body:
                detail = f": {body.get('error')} {body.get('error_description') or ''}".rstrip()
            raise TokenRequestError(f"the token endpoint refused: HTTP {response.status_code}{detail}")
        token, token_type = body.get("access_token"), str(body.get("token_type", "bearer"))
        if not isinstance(token, str) or not token:
            raise TokenRequestError("the token endpoint answered without an access_token")
        if token_type.lower() != "bearer":
            raise TokenRequestError(f"the token endpoint issued a {token_type!r} token, not a bearer token")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
            # From when the request was sent: the token may have been issued at any moment after.
            refresh_at = started + max(0.0, float(expires_in) - self._refresh_margin)
        else:
            refresh_at = float("inf")  # no expiry given: kept until the API refuses it
        return _CachedToken(value=token, refresh_at=refresh_at)


def _basic_credentials(client_id: str, client_secret: str) -> str:
    # RFC 6749 section 2.3.1: both are form-urlencoded before they are joined and base64-encoded.
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class BearerTokenAuth(httpx.Auth):
    """`Authorization: Bearer <token>` from a provider; on a 401, fetches a new token and retries once."""

    def __init__(self, provider: TokenProvider | str) -> None:
        self._provider: TokenProvider = StaticToken(provider) if isinstance(provider, str) else provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._provider.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self._provider.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self._provider.token()}"
            yield request


class SigV4Auth(httpx.Auth):
    """Signs requests with AWS Signature Version 4 (API Gateway with IAM authorization).

    Needs botocore (`pip install 'orderpipe-client[sigv4]'`). Credentials default to botocore's
    chain (environment, profile, instance role); refreshable credentials are frozen per request.
    Signs the host, the content type, the body and the API's own headers (`x-api-key`,
    `Idempotency-Key`), which intermediaries leave alone.
    """

    requires_request_body = True
    SIGNED_HEADERS = ("host", "content-type", API_KEY_HEADER, "idempotency-key")

    def __init__(self, region: str, *, credentials: Any = None, service: str = "execute-api") -> None:
        try:
            from botocore.auth import SigV4Auth as BotocoreSigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.session import get_session
        except ImportError as error:  # pragma: no cover - depends on the installation
            raise ImportError("SigV4Auth needs botocore: pip install 'orderpipe-client[sigv4]'") from error
        if credentials is None:
            credentials = get_session().get_credentials()
            if credentials is None:
                raise ValueError("no AWS credentials found (environment, profile or role)")
        self._credentials = credentials
        self._region = region
        self._service = service
        self._signer_class = BotocoreSigV4Auth
        self._request_class = AWSRequest

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:
        frozen = (
            self._credentials.get_frozen_credentials()
            if hasattr(self._credentials, "get_frozen_credentials")
            else self._credentials
        )
        headers = {name: request.headers[name] for name in self.SIGNED_HEADERS if name in request.headers}
        aws_request = self._request_class(
            method=request.method, url=str(request.url), data=request.content, headers=headers
        )
        self._signer_class(frozen, self._service, self._region).add_auth(aws_request)
        for name, value in aws_request.headers.items():
            if name.lower() == "authorization" or name.lower().startswith("x-amz-"):
                request.headers[name] = value


class CombinedAuth(httpx.Auth):
    """Header auths first, then at most one auth that owns the request flow (bearer or SigV4)."""

    def __init__(self, auths: Iterable[httpx.Auth]) -> None:
        auths = list(auths)
        self._headers = [auth for auth in auths if isinstance(auth, HeaderAuth)]
        flows = [auth for auth in auths if not isinstance(auth, HeaderAuth)]
        if len(flows) > 1:
            names = " and ".join(type(auth).__name__ for auth in flows)
            raise ValueError(f"{names} both set the Authorization header; use one of them")
        self._flow = flows[0] if flows else None
        self.requires_request_body = bool(self._flow and self._flow.requires_request_body)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for auth in self._headers:
            auth.apply(request)
        if self._flow is None:
            yield request
            return
        yield from self._flow.auth_flow(request)


def combine(*auths: httpx.Auth | None) -> httpx.Auth | None:
    """One auth from several (None entries are skipped); None when there are none."""
    present = [auth for auth in auths if auth is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return CombinedAuth(present)
