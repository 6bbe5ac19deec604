"""Verifying OAuth 2.0 access tokens (JWT, RS256) against the issuer's published signing keys.

The keys (JWKS) are fetched once per process and reused; a token signed with a key id the cache does
not know fetches them again (the issuer rotated its keys). Only RS256 is accepted, so a token cannot
choose a weaker algorithm (`none`, or HS256 with the public key as the secret).
"""

from __future__ import annotations

from typing import Any, Protocol

import jwt
from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError

from orderpipe_authorizer.settings import AuthorizerSettings, get_settings
from orderpipe_common.deadlines import Deadline
from orderpipe_common.errors import DomainError
from orderpipe_common.per_process import per_process

ALGORITHMS = ("RS256",)


class InvalidTokenError(DomainError):
    """The token is malformed, forged, expired, or for another issuer or audience (the gateway: 401)."""


class IssuerUnavailableError(DomainError):
    """The issuer's signing keys cannot be fetched: nothing can be verified right now."""


class TokenVerifier(Protocol):
    def verify(self, token: str, deadline: Deadline) -> dict[str, Any]:
        """The token's claims, or InvalidTokenError / IssuerUnavailableError (keys not fetched in time)."""
        ...


class JwksTokenVerifier:
    def __init__(self, settings: AuthorizerSettings, *, jwks: PyJWKClient | None = None) -> None:
        self._settings = settings
        self._jwks = jwks or PyJWKClient(
            settings.jwks_url,
            cache_keys=True,
            lifespan=settings.auth_jwks_cache_seconds,
            timeout=settings.auth_jwks_timeout_seconds,
        )

    def verify(self, token: str, deadline: Deadline) -> dict[str, Any]:
        settings = self._settings
        if deadline.expired:
            raise IssuerUnavailableError("no time left to verify the token")
        # PyJWKClient takes one timeout for its fetches; this process decides one request at a time,
        # so the fetch this token may need waits no longer than the decision's deadline.
        self._jwks.timeout = deadline.timeout(settings.auth_jwks_timeout_seconds)
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except PyJWKClientConnectionError as error:
            raise IssuerUnavailableError(f"signing keys unavailable: {error}") from error
        except (PyJWKClientError, jwt.InvalidTokenError) as error:
            raise InvalidTokenError(f"no usable signing key: {error}") from error
        required = ["exp", "iat", "iss", settings.auth_principal_claim]
        if settings.auth_audience is not None:
            required.append("aud")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=list(ALGORITHMS),
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                leeway=settings.auth_leeway_seconds,
                options={"require": required, "verify_aud": settings.auth_audience is not None},
            )
        except jwt.InvalidTokenError as error:
            raise InvalidTokenError(str(error)) from error
        # Cognito marks its tokens; an ID token is not an access token for this API.
        if claims.get("token_use", "access") != "access":
            raise InvalidTokenError("not an access token")
        return claims


@per_process
def get_verifier() -> TokenVerifier:
    return JwksTokenVerifier(get_settings())
