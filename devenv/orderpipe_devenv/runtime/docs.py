"""The API's OpenAPI document and a rendered view of it, served by the local runtime.

`/openapi.json` is the document the handlers and the model generate (the committed docs/openapi.json,
which a test keeps equal to it); `/docs` is Swagger UI on it, from the assets `make setup` installs
with npm (swagger-ui-dist, pinned in package.json). Nothing comes from a CDN: the page names only
same-origin assets and its Content-Security-Policy allows no other origin. "Try it out" calls the
running API (the document's server is `/`). Authorize (jwt mode) asks for a client id and secret
and fetches a token from the document's relative tokenUrl, `/oauth2/token` on this origin, which
this site forwards to the local issuer (same origin: the page's Content-Security-Policy allows it,
and the issuer needs no CORS).

The deployed API Gateway serves neither: this is a developer's view of the local pipeline.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import Path

from orderpipe_common.http import OAUTH2_TOKEN_PATH

REPO_ROOT = Path(__file__).resolve().parents[3]
SWAGGER_UI_DIR = REPO_ROOT / "node_modules" / "swagger-ui-dist"
DOCUMENT_PATH = "/openapi.json"
DOCS_PATH = "/docs"

# The files of swagger-ui-dist the page uses, and their media types.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>orderpipe API (local)</title>
  <link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{DOCS_PATH}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{DOCS_PATH}/init.js"></script>
</body>
</html>
"""
# validatorUrl null: Swagger UI would otherwise send the document to an online validator for a badge.
_INIT = f"""window.ui = SwaggerUIBundle({{
  url: "{DOCUMENT_PATH}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null
}});
"""
# Swagger UI renders SVG icons as data: URIs and sets inline styles; scripts come from here only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)

Answer = tuple[int, dict[str, str], bytes]


def _generated_document() -> str:
    from orderpipe_devenv.openapi import generate  # imports the handlers: only when first asked

    return generate()


class DocsSite:
    """Answers GET/HEAD for the document and the docs page; `answer` is None for any other request."""

    def __init__(
        self,
        *,
        document: Callable[[], str] = _generated_document,
        assets_dir: Path = SWAGGER_UI_DIR,
        token_url: str | None = None,
    ) -> None:
        self._document = document
        self._assets_dir = assets_dir
        self._token_url = token_url  # the local issuer's token endpoint (jwt mode), for Authorize
        self._document_text: str | None = None
        self._lock = threading.Lock()

    def answer(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> Answer | None:
        if method == "POST" and path == OAUTH2_TOKEN_PATH and self._token_url is not None:
            return self._forward_token_request(headers or {}, body)
        if method not in ("GET", "HEAD"):
            return None
        if path == DOCUMENT_PATH:
            return _ok(self.document().encode(), "application/json")
        if path in (DOCS_PATH, f"{DOCS_PATH}/"):
            return self._with_assets(lambda: _ok(_PAGE.encode(), "text/html; charset=utf-8", policy=True))
        if path == f"{DOCS_PATH}/init.js":
            return _ok(_INIT.encode(), "text/javascript; charset=utf-8")
        name = path.removeprefix(f"{DOCS_PATH}/")
        if name != path and name in ASSETS:
            return self._with_assets(lambda: _ok((self._assets_dir / name).read_bytes(), ASSETS[name]))
        return None

    def document(self) -> str:
        with self._lock:
            if self._document_text is None:
                self._document_text = self._document()
            return self._document_text

    def _forward_token_request(self, headers: Mapping[str, str], body: bytes) -> Answer:
        """The token request of Swagger UI's Authorize, passed to the issuer and its answer back."""
        assert self._token_url is not None
        forwarded = {
            name: value
            for name, value in headers.items()
            if name.lower() in ("authorization", "content-type", "accept")
        }
        request = urllib.request.Request(self._token_url, data=body, headers=forwarded, method="POST")  # noqa: S310 - the local issuer's http URL
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return answer.status, {"Content-Type": answer.headers.get("Content-Type", "")}, answer.read()
        except urllib.error.HTTPError as refused:
            return refused.code, {"Content-Type": refused.headers.get("Content-Type", "")}, refused.read()

    def _with_assets(self, serve: Callable[[], Answer]) -> Answer:
        if not all((self._assets_dir / name).is_file() for name in ASSETS):
            message = f"Swagger UI's assets are not installed ({self._assets_dir}): run `make setup` (npm ci)"
            body = json.dumps({"error": {"code": "docs_unavailable", "message": message}}).encode()
            return int(HTTPStatus.SERVICE_UNAVAILABLE), {"Content-Type": "application/json"}, body
        return serve()


def _ok(body: bytes, content_type: str, *, policy: bool = False) -> Answer:
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache"}
    if policy:
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return int(HTTPStatus.OK), headers, body
