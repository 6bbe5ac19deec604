"""An API Gateway (REST API) emulator: HTTP in, REST proxy events to the real handlers, HTTP out.

It enforces what the deployed API enforces before a function sees a request: the route table (403
MISSING_AUTHENTICATION_TOKEN for unknown routes, as API Gateway answers), authentication (the real
authorizer function in `jwt` mode, SigV4 in `iam` mode: runtime/gateway_auth.py) with the usage-plan
API key, and the payload size bound (413). Its own answers have the deployed gateway's body,
`{"error": {"code": <gateway response type>, "message": ...}}` (the templates the stack sets on its
gateway responses, stacks/api.py). Given a DocsSite, it also serves the API's document and docs page
(runtime/docs.py), without credentials: the deployed API has no such routes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from orderpipe_common.identity import gateway_responses
from orderpipe_devenv.lambda_events import match_resource, rest_proxy_event
from orderpipe_devenv.runtime.docs import DocsSite
from orderpipe_devenv.runtime.gateway_auth import (
    GatewayAuth,
    GatewayRefusalError,
    GatewayRequest,
    missing_authentication_token,
)

log = logging.getLogger("orderpipe.gateway")

# API Gateway's hard limit on a request payload.
API_GATEWAY_MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # API Gateway's resource path, e.g. /orders/{order_id}
    invoke: Callable[[dict[str, Any]], Any]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        return match_resource(self.resource, path) if method == self.method else None


class ApiGatewayEmulator:
    def __init__(
        self,
        *,
        routes: list[Route],
        auth: GatewayAuth,
        host: str = "127.0.0.1",
        port: int = 8080,
        max_payload_bytes: int = API_GATEWAY_MAX_PAYLOAD_BYTES,
        stage: str = "local",
        docs: DocsSite | None = None,
    ) -> None:
        self.routes = routes
        self.docs = docs
        self.auth = auth
        self.max_payload_bytes = max_payload_bytes
        self.stage = stage
        self._server = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def handle(
        self,
        method: str,
        raw_path: str,
        headers: dict[str, str],
        body: bytes,
        *,
        source_ip: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], bytes]:
        """One request through the gateway: (status, headers, body); `headers` names lower-cased."""
        url = urlsplit(raw_path)
        docs_answer = self.docs.answer(method, url.path, headers=headers, body=body) if self.docs else None
        if docs_answer is not None:
            return docs_answer
        route, path_parameters = self._route(method, url.path)
        if route is None:
            return self._refusal(missing_authentication_token())
        if len(body) > self.max_payload_bytes:
            return _gateway_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "REQUEST_TOO_LARGE", "Request Too Long"
            )
        request_id = str(uuid.uuid4())
        try:
            admission = self.auth.admit(
                GatewayRequest(
                    method=method,
                    path=url.path,
                    query=url.query,
                    resource=route.resource,
                    headers=headers,
                    body=body,
                    source_ip=source_ip,
                    request_id=request_id,
                    stage=self.stage,
                    host=self.url.removeprefix("http://"),
                )
            )
        except GatewayRefusalError as refusal:
            return self._refusal(refusal)
        event = rest_proxy_event(
            method,
            url.path,
            resource=route.resource,
            headers=headers,
            body=body or None,  # bytes: a body that is not UTF-8 goes base64-encoded, as API Gateway does
            path_parameters=path_parameters or None,
            query_parameters=dict(parse_qsl(url.query)) or None,
            stage=self.stage,
            source_ip=source_ip,
            request_id=request_id,
            authorizer=admission.authorizer,
            user_arn=admission.user_arn,
            access_key=admission.access_key,
            api_key=admission.api_key,
        )
        try:
            response = route.invoke(event)
        except Exception:
            log.exception("function failed on %s %s", method, url.path)
            return _gateway_error(HTTPStatus.BAD_GATEWAY, "DEFAULT_5XX", "Internal server error")
        response_headers = {name: str(value) for name, value in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            response_headers[name] = ", ".join(str(v) for v in values)
        return int(response["statusCode"]), response_headers, (response.get("body") or "").encode()

    def _refusal(self, refusal: GatewayRefusalError) -> tuple[int, dict[str, str], bytes]:
        """A refusal as the deployed API answers it: with the status and headers the stack configures
        for its response type (orderpipe_common.identity.gateway_responses), else API Gateway's default."""
        configured = gateway_responses(self.auth.mode).get(refusal.response_type)
        if configured is None:
            return _gateway_error(refusal.status, refusal.response_type, refusal.message, refusal.headers)
        headers = {**refusal.headers, **configured.headers}
        return _gateway_error(configured.status, refusal.response_type, refusal.message, headers)

    def _route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        # As API Gateway: the path selects one resource, a literal segment before a {parameter}
        # (GET /orders/batch is the batch resource, not an order id), then the method one of its
        # routes; a resource without that method is a 403 like an unknown path.
        candidates = [
            (route, parameters)
            for route in self.routes
            if (parameters := match_resource(route.resource, path)) is not None
        ]
        if not candidates:
            return None, {}
        resource = min((route.resource for route, _ in candidates), key=_parameter_segments)
        for route, parameters in candidates:
            if route.resource == resource and route.method == method:
                return route, parameters
        return None, {}

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as clients of a real API expect
            server_version = "orderpipe-local-apigw"

            def _serve(self) -> None:
                started = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                if length > gateway.max_payload_bytes:
                    status, headers, body = _gateway_error(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "REQUEST_TOO_LARGE", "Request Too Long"
                    )
                    self.close_connection = True  # the unread body must not be taken as the next request
                else:
                    payload = self.rfile.read(length) if length else b""
                    request_headers = {name.lower(): value for name, value in self.headers.items()}
                    status, headers, body = gateway.handle(
                        self.command, self.path, request_headers, payload, source_ip=self.client_address[0]
                    )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                log.info(
                    "%s %s -> %d in %.1f ms",
                    self.command,
                    self.path,
                    status,
                    (time.perf_counter() - started) * 1000,
                )

            def __getattr__(self, name: str) -> Any:
                # Every method (QUERY, TRACE, ... too) goes through the route table, and one without a
                # route gets API Gateway's 403, not http.server's 501.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per request is logged by _serve

        return RequestHandler


def _parameter_segments(resource: str) -> tuple[bool, ...]:
    """Sort key: at the first segment where two resources differ, the literal one is more specific."""
    return tuple(segment.startswith("{") for segment in resource.strip("/").split("/"))


def _gateway_error(
    status: int, response_type: str, message: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """An answer of the gateway itself, in the body the deployed stack's gateway responses give."""
    body = json.dumps({"error": {"code": response_type, "message": message}}).encode()
    return int(status), {"Content-Type": "application/json", **(headers or {})}, body
