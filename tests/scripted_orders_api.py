"""A scripted orderpipe API on 127.0.0.1 for the producer client's tests.

It behaves like the real ingest and reader where it matters to a producer - the real order model
validates, order ids derive from route + Idempotency-Key + body exactly as ingest derives them, an
answer is replayed for the same key and body, the same key with another body is a 422 - and stores
each order under its id (a second store of the same id is an upsert, as in Cassandra). On top of
that, a script says what to do with the next POSTs: answer a canned status (with Retry-After), drop
the connection before or after processing, report some batch items `failed`, or delay. Every
request received is recorded, with the time it arrived.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from orderpipe_common.http import field_errors
from orderpipe_common.model import Order, OrderRequest
from orderpipe_ingest.idempotency import order_id_seed
from orderpipe_ingest.logic import derived_order_id

ORDERS_ROUTE = "POST /orders"
BATCH_ROUTE = "POST /orders/batch"

# The producer the scripted service stamps on the orders it accepts (the real one: the credential's).
SCRIPTED_PRODUCER = "scripted-producer"


# -- what the script can say -----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """Answer this status without processing anything (a gateway or backing-service failure)."""

    status: int
    retry_after: int | None = None
    message: str = "scripted"


@dataclass(frozen=True)
class Drop:
    """Read the request, then close the connection without answering; nothing is processed."""


@dataclass(frozen=True)
class DropAfterProcessing:
    """Process the request (store, remember the answer), then close without answering: the lost answer."""


@dataclass(frozen=True)
class FailItems:
    """Batch: report these positions `failed` (valid, not queued, not stored)."""

    positions: frozenset[int]


@dataclass(frozen=True)
class Delay:
    """Wait this long, then process normally."""

    seconds: float


Action = Answer | Drop | DropAfterProcessing | FailItems | Delay


@dataclass
class ReceivedRequest:
    at: float  # time.monotonic() when the request was read
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    outcome: str = ""  # what the server did: "202", "503", "dropped", ...

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")

    def json(self) -> Any:
        return json.loads(self.body, parse_float=Decimal)


@dataclass
class _Remembered:
    canonical_body: str
    answer: dict[str, Any]


@dataclass
class ScriptedOrdersApi:
    """The API; `script` is consumed one action per POST, in arrival order (empty: normal)."""

    script: list[Action] = field(default_factory=list)
    api_key: str | None = None
    bearer_tokens: set[str] | None = None  # when set, a valid bearer token is required (401 otherwise)
    token_lifetime: int = 3600
    oauth_client: tuple[str, str] = ("client-id", "client-secret")
    sigv4_secret: str | None = None  # when set, the SigV4 signature is verified (403 otherwise)
    readable_after_polls: int = 0  # GET answers 404 + Retry-After this many times per order
    not_found_retry_after: int = 1
    requests: list[ReceivedRequest] = field(default_factory=list)
    stored: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    stores: int = 0  # every store, upserts included
    token_requests: int = 0
    max_in_flight: int = 0
    signature_checks: list[bool] = field(default_factory=list)
    on_request: Callable[[ReceivedRequest], None] | None = None
    # Chooses the action for a POST by its content (before the script is consulted); None: no say.
    action_for: Callable[[ReceivedRequest], Action | None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._remembered: dict[tuple[str, str], _Remembered] = {}
        self._polls: dict[str, int] = {}
        self._in_flight = 0
        self._issued = 0
        self._server: ThreadingHTTPServer | None = None

    # -- control -----------------------------------------------------------------------------------

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="scripted-api", daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def forget_keys(self) -> None:
        """Forget every remembered answer, as when the idempotency window has passed."""
        with self._lock:
            self._remembered.clear()

    def posts(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]

    def stored_by_reference(self) -> dict[str, set[uuid.UUID]]:
        """client_reference -> the ids stored under it (a reference stored twice has two ids)."""
        found: dict[str, set[uuid.UUID]] = {}
        with self._lock:
            for order_id, order in self.stored.items():
                found.setdefault(str(order.get("client_reference")), set()).add(order_id)
        return found

    # -- the API -----------------------------------------------------------------------------------

    def _next_action(self, request: ReceivedRequest) -> Action | None:
        if self.action_for is not None and (chosen := self.action_for(request)) is not None:
            return chosen
        with self._lock:
            return self.script.pop(0) if self.script else None

    def _authorize(self, request: ReceivedRequest) -> tuple[int, dict[str, Any]] | None:
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return 403, {"message": "Forbidden"}
        if self.bearer_tokens is not None:
            header = request.headers.get("authorization", "")
            if not header.startswith("Bearer ") or header.removeprefix("Bearer ") not in self.bearer_tokens:
                return 401, {"message": "Unauthorized"}
        if self.sigv4_secret is not None:
            valid = _sigv4_valid(request, self.url, self.sigv4_secret)
            with self._lock:
                self.signature_checks.append(valid)
            if not valid:
                return 403, {"message": "The request signature we calculated does not match"}
        return None

    def _issue_token(self, request: ReceivedRequest) -> tuple[int, dict[str, Any]]:
        expected = "Basic " + base64.b64encode(":".join(self.oauth_client).encode()).decode()
        form = dict(part.split("=", 1) for part in request.body.decode().split("&") if "=" in part)
        if request.headers.get("authorization") != expected or form.get("grant_type") != "client_credentials":
            return 401, {"error": "invalid_client"}
        with self._lock:
            self._issued += 1
            self.token_requests += 1
            token = f"token-{self._issued}"
            if self.bearer_tokens is not None:
                self.bearer_tokens.add(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}

    def _process_post(
        self, route: str, request: ReceivedRequest, fail: frozenset[int]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            payload = request.json()
        except ValueError:
            return 400, _error("malformed_json", "the body is not valid JSON"), {}
        key = request.key
        canonical = json.dumps(payload, sort_keys=True, default=str)
        if key is not None:
            with self._lock:
                remembered = self._remembered.get((route, key))
            if remembered is not None:
                if remembered.canonical_body != canonical:
                    return (
                        422,
                        _error(
                            "unprocessable",
                            "key reused with a different body",
                            field="header.Idempotency-Key",
                        ),
                        {},
                    )
                return 202, remembered.answer, {}
        seed = order_id_seed(key=key, producer=SCRIPTED_PRODUCER, route=route, body=payload)
        if route == ORDERS_ROUTE:
            status, answer, headers = self._accept_one(payload, seed)
        else:
            status, answer, headers = self._accept_batch(payload, seed, fail)
        if status == 202 and key is not None:
            with self._lock:
                self._remembered[(route, key)] = _Remembered(canonical, answer)
        return status, answer, headers

    def _store(self, order: Order) -> None:
        with self._lock:
            self.stored[order.order_id] = order.model_dump(mode="json", exclude_none=True)
            self.stores += 1

    def _accept_one(self, payload: Any, seed: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            request = OrderRequest.model_validate(payload)
        except ValidationError as error:
            return (
                422,
                {
                    "error": {
                        "code": "unprocessable",
                        "message": "not a valid order",
                        "fields": field_errors(error),
                    }
                },
                {},
            )
        order = Order.accept(
            request, producer=SCRIPTED_PRODUCER, order_id=derived_order_id(seed) or uuid.uuid4()
        )
        self._store(order)
        return (
            202,
            {"order_id": str(order.order_id), "status": "accepted"},
            {"Location": f"/orders/{order.order_id}"},
        )

    def _accept_batch(
        self, payload: Any, seed: str | None, fail: frozenset[int]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not isinstance(payload, list) or not 1 <= len(payload) <= 100:
            return 422, _error("batch_rejected", "the body must be an array of 1-100 orders"), {}
        results: list[dict[str, Any]] = []
        valid: list[Order] = []
        for index, item in enumerate(payload):
            try:
                request = OrderRequest.model_validate(item)
            except ValidationError as error:
                results.append({"index": index, "status": "rejected", "errors": field_errors(error)})
                continue
            order = Order.accept(
                request, producer=SCRIPTED_PRODUCER, order_id=derived_order_id(seed, index) or uuid.uuid4()
            )
            valid.append(order)
            if index in fail:
                results.append({"index": index, "status": "failed"})
            else:
                results.append({"index": index, "status": "accepted", "order_id": str(order.order_id)})
        if not valid:
            fields = [
                {**error, "field": f"{result['index']}.{error['field']}"}
                for result in results
                for error in result.get("errors", [])
            ]
            return 422, _error("batch_rejected", "no order in the batch is valid", fields=fields), {}
        accepted_ids = {r["order_id"] for r in results if r["status"] == "accepted"}
        if not accepted_ids:
            return 503, _error("service_unavailable", "the queue took none"), {"Retry-After": "1"}
        for order in valid:
            if str(order.order_id) in accepted_ids:
                self._store(order)
        counts = {s: sum(1 for r in results if r["status"] == s) for s in ("accepted", "rejected", "failed")}
        return 202, {**counts, "results": results}, {}

    def _get(self, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        raw_id = path.rsplit("/", 1)[-1]
        try:
            order_id = uuid.UUID(raw_id)
        except ValueError:
            return 400, _error("bad_request", "order_id is not a UUID", field="order_id"), {}
        with self._lock:
            polls = self._polls[raw_id] = self._polls.get(raw_id, 0) + 1
            order = self.stored.get(order_id)
        if order is None or polls <= self.readable_after_polls:
            return (
                404,
                _error("not_found", "no such order (yet)"),
                {"Retry-After": str(self.not_found_retry_after)},
            )
        return 200, {**order, "accepted_at": order.get("accepted_at") or datetime.now(UTC).isoformat()}, {}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def _receive(self) -> ReceivedRequest:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = ReceivedRequest(
                    at=time.monotonic(),
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                )
                with api._lock:
                    api.requests.append(request)
                    api._in_flight += 1
                    api.max_in_flight = max(api.max_in_flight, api._in_flight)
                if api.on_request is not None:
                    api.on_request(request)
                return request

            def _done(self, request: ReceivedRequest, outcome: str) -> None:
                request.outcome = outcome
                with api._lock:
                    api._in_flight -= 1

            def _drop(self, request: ReceivedRequest) -> None:
                self._done(request, "dropped")
                self.close_connection = True  # closed without a byte of answer

            def do_POST(self) -> None:
                request = self._receive()
                if self.path == "/oauth2/token":
                    status, body = api._issue_token(request)
                    self._done(request, str(status))
                    self._send(status, body, {})
                    return
                refused = api._authorize(request)
                if refused is not None:
                    self._done(request, str(refused[0]))
                    self._send(refused[0], refused[1], {})
                    return
                route = {"/orders": ORDERS_ROUTE, "/orders/batch": BATCH_ROUTE}.get(self.path)
                if route is None:
                    self._done(request, "403")
                    self._send(403, {"message": "Missing Authentication Token"}, {})
                    return
                action = api._next_action(request)
                if isinstance(action, Delay):
                    time.sleep(action.seconds)
                if isinstance(action, Answer):
                    headers = (
                        {"Retry-After": str(action.retry_after)} if action.retry_after is not None else {}
                    )
                    self._done(request, str(action.status))
                    self._send(action.status, _error("scripted", action.message), headers)
                    return
                if isinstance(action, Drop):
                    self._drop(request)
                    return
                fail = action.positions if isinstance(action, FailItems) else frozenset()
                status, body, headers = api._process_post(route, request, fail)
                if isinstance(action, DropAfterProcessing):
                    self._drop(request)
                    return
                self._done(request, str(status))
                self._send(status, body, headers)

            def do_GET(self) -> None:
                request = self._receive()
                refused = api._authorize(request)
                if refused is not None:
                    self._done(request, str(refused[0]))
                    self._send(refused[0], refused[1], {})
                    return
                status, body, headers = api._get(self.path)
                self._done(request, str(status))
                self._send(status, body, headers)

        return Handler


def _error(
    code: str, message: str, *, field: str | None = None, fields: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        fields = [{"field": field, "message": message, "type": code}]
    if fields:
        detail["fields"] = fields
    return {"error": detail}


def _sigv4_valid(request: ReceivedRequest, base_url: str, secret: str) -> bool:
    """Recompute the request's SigV4 signature from what arrived (botocore's algorithm)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = request.headers.get("authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return False
    parts = dict(
        part.strip().split("=", 1) for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(",")
    )
    access_key, _date, region, service, _ = parts["Credential"].split("/")
    signed = parts["SignedHeaders"].split(";")
    headers = {name: request.headers[name] for name in signed if name in request.headers}
    if len(headers) != len(signed):
        return False
    aws_request = AWSRequest(
        method=request.method, url=base_url + request.path, data=request.body, headers=headers
    )
    aws_request.context["timestamp"] = request.headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    return bool(expected == parts["Signature"])


def order(
    reference: str, *, quantity: int = 1, price: str = "9.99", customer: str = "cust-1"
) -> dict[str, Any]:
    """A valid order whose client_reference identifies it in `stored_by_reference`."""
    return {
        "customer_id": customer,
        "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": quantity, "unit_price": price}],
        "client_reference": reference,
    }
