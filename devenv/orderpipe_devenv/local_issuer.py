"""A local OAuth 2.0 issuer on loopback: the client-credentials grant, real RS256 tokens, a JWKS.

It stands in for the Cognito user pool the stack creates. Clients (producers) are Cognito app clients
in the local AWS emulator (moto), created by `orderpipe producers add` with the same calls as against
AWS; the issuer checks each token request against them (secret, allowed flow, allowed scopes) and
signs with its own RSA key, published at `/.well-known/jwks.json`. The tokens look like Cognito's
access tokens (`sub` = `client_id`, `token_use`, space-separated `scope`) plus an `aud` claim, as
external issuers (Okta, Auth0, Entra) put one, so the authorizer's audience check runs locally too.

    POST /oauth2/token        grant_type=client_credentials [&scope=orders/write orders/read]
                              client_secret_basic (Authorization: Basic) or client_secret_post
    GET  /.well-known/jwks.json
    GET  /.well-known/openid-configuration
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl

import jwt
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

log = logging.getLogger("orderpipe.issuer")

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
CLIENT_CREDENTIALS = "client_credentials"
# Cognito's default access-token lifetime.
DEFAULT_TOKEN_SECONDS = 3600


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    secret: str
    scopes: frozenset[str]
    client_credentials: bool


class ClientDirectory(Protocol):
    def find(self, client_id: str) -> RegisteredClient | None: ...


class CognitoClientDirectory:
    """App clients of a Cognito user pool (moto locally), read on every token request."""

    def __init__(self, cognito: Any, user_pool_id: str) -> None:
        self._cognito = cognito
        self._user_pool_id = user_pool_id

    def find(self, client_id: str) -> RegisteredClient | None:
        try:
            client = self._cognito.describe_user_pool_client(
                UserPoolId=self._user_pool_id, ClientId=client_id
            )["UserPoolClient"]
        except ClientError as error:
            if error.response["Error"]["Code"] in {"ResourceNotFoundException", "InvalidParameterException"}:
                return None
            raise
        return RegisteredClient(
            client_id=client_id,
            secret=client.get("ClientSecret") or "",
            scopes=frozenset(client.get("AllowedOAuthScopes") or ()),
            client_credentials=CLIENT_CREDENTIALS in (client.get("AllowedOAuthFlows") or ()),
        )


class TokenRequestError(Exception):
    """An RFC 6749 error answer: `error` code, status."""

    def __init__(self, error: str, description: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


class LocalIssuer:
    """The issuer: a signing key, a client directory and an HTTP server on loopback."""

    def __init__(
        self,
        *,
        clients: ClientDirectory,
        audience: str | None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_seconds: int = DEFAULT_TOKEN_SECONDS,
    ) -> None:
        self.clients = clients
        self.audience = audience
        self.token_seconds = token_seconds
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = uuid.uuid4().hex
        self._server = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- addresses --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    # -- tokens -----------------------------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**public, "kid": self.key_id, "alg": "RS256", "use": "sig"}]}

    def mint(self, client_id: str, scopes: list[str] | tuple[str, ...], **overrides: Any) -> str:
        """A signed access token for `client_id` (tests change claims with `overrides`)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client_id,
            "client_id": client_id,
            "token_use": "access",
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + self.token_seconds,
            "jti": str(uuid.uuid4()),
            "version": 2,
        }
        if self.audience is not None:
            claims["aud"] = self.audience
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})

    def grant(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token endpoint's answer to a client-credentials request, or TokenRequestError."""
        client_id, secret = _client_credentials(form, authorization)
        client = self.clients.find(client_id)
        if client is None or not secrets.compare_digest(client.secret.encode(), secret.encode()):
            raise TokenRequestError(
                "invalid_client", "unknown client or wrong secret", HTTPStatus.UNAUTHORIZED
            )
        if form.get("grant_type") != CLIENT_CREDENTIALS:
            raise TokenRequestError("unsupported_grant_type", "only client_credentials is supported")
        if not client.client_credentials:
            raise TokenRequestError("unauthorized_client", "the client may not use client_credentials")
        requested = frozenset((form.get("scope") or "").split()) or client.scopes
        if not requested <= client.scopes:
            raise TokenRequestError(
                "invalid_scope", f"not allowed: {' '.join(sorted(requested - client.scopes))}"
            )
        token = self.mint(client_id, sorted(requested))
        log.info("token issued to %s (%s)", client_id, " ".join(sorted(requested)))
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_seconds}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "token_endpoint": self.token_url,
            "jwks_uri": self.jwks_url,
            "grant_types_supported": [CLIENT_CREDENTIALS],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # -- server -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-issuer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalIssuer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "orderpipe-local-issuer"

            def _answer(
                self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == JWKS_PATH:
                    self._answer(HTTPStatus.OK, issuer.jwks())
                elif self.path == DISCOVERY_PATH:
                    self._answer(HTTPStatus.OK, issuer.discovery())
                else:
                    self._answer(HTTPStatus.NOT_FOUND, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                if self.path != TOKEN_PATH:
                    self._answer(HTTPStatus.NOT_FOUND, {"error": "not_found"})
                    return
                try:
                    answer = issuer.grant(dict(parse_qsl(body)), self.headers.get("Authorization"))
                except TokenRequestError as error:
                    headers = (
                        {"WWW-Authenticate": "Basic"} if error.status == HTTPStatus.UNAUTHORIZED else None
                    )
                    log.info("token refused: %s", error.error)
                    self._answer(
                        error.status, {"error": error.error, "error_description": error.description}, headers
                    )
                    return
                self._answer(HTTPStatus.OK, answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return RequestHandler


def _client_credentials(form: Mapping[str, str], authorization: str | None) -> tuple[str, str]:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise TokenRequestError(
                "invalid_client", "malformed Basic credentials", HTTPStatus.UNAUTHORIZED
            ) from None
        return client_id, secret
    if form.get("client_id") and form.get("client_secret"):
        return form["client_id"], form["client_secret"]
    raise TokenRequestError(
        "invalid_client", "send client credentials (Basic or in the body)", HTTPStatus.UNAUTHORIZED
    )
