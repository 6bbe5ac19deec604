"""The producer client: submit orders (one or in batches), read them back, with safe retries.

Every POST carries a deterministic `Idempotency-Key` (see `orderpipe_client.keys`), so any request
may be sent again - after a timeout, a dropped connection, a 409/429/503, a crash - without storing
an order twice. Refusals (400/413/415/422, and a 409 for a key reused with another body) are never
retried: they come back as rejections naming the fields. Thread-safe: one client may serve many threads (it holds one connection pool).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from orderpipe_client import keys
from orderpipe_client._version import __version__
from orderpipe_client.auth import ApiKeyAuth, combine
from orderpipe_client.errors import (
    AuthenticationError,
    OperationCancelledError,
    OrderNotReadableError,
    OrderRejectedError,
    SubmitFailedError,
    UnexpectedResponseError,
)
from orderpipe_client.models import (
    Accepted,
    BatchAccepted,
    ErrorResponse,
    FieldError,
    Order,
    OrderOutcome,
)
from orderpipe_client.retry import (
    KEY_REUSED_CODE,
    REFUSAL_STATUSES,
    RETRYABLE_STATUSES,
    RetryPolicy,
    parse_retry_after,
    sleep_unless_cancelled,
)

log = logging.getLogger("orderpipe_client")

# The API's bounds (docs/openapi.json): orders per batch request and bytes per batch body.
MAX_ORDERS_PER_BATCH = 100
MAX_BATCH_BODY_BYTES = 1024 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Poll interval of wait_until_readable when a 404 carries no Retry-After, and the least one.
DEFAULT_POLL_SECONDS = 1.0
MIN_POLL_SECONDS = 0.05
# The errors after which the request may or may not have reached the server: resent with its key.
RETRYABLE_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class PreparedOrder:
    """An order ready to send: its position, its Idempotency-Key and its canonical JSON body."""

    index: int
    key: str
    body: str


class BatchListener(Protocol):
    """Hears what a batch submission does, as it does it (the bulk importer journals through it)."""

    def sending(self, key: str, indexes: Sequence[int]) -> None:
        """Called before a batch request is first sent (not before each retry of it)."""

    def settled(self, outcomes: Sequence[OrderOutcome]) -> None:
        """Called with outcomes as soon as they are final, before anything else is sent."""

    def pending(self, index: int) -> bool:
        """Whether a `failed` order should still be re-sent (False: it was settled elsewhere)."""


class _Silent:
    def sending(self, key: str, indexes: Sequence[int]) -> None:
        pass

    def settled(self, outcomes: Sequence[OrderOutcome]) -> None:
        pass

    def pending(self, index: int) -> bool:
        return True


def plan_batches(
    orders: Iterable[PreparedOrder],
    *,
    batch_size: int = MAX_ORDERS_PER_BATCH,
    max_bytes: int = MAX_BATCH_BODY_BYTES,
) -> Iterator[list[PreparedOrder]]:
    """Consecutive groups of at most `batch_size` orders and `max_bytes` of body, in input order.

    Deterministic: the same orders always make the same groups (and so the same batch keys).
    """
    if not 1 <= batch_size <= MAX_ORDERS_PER_BATCH:
        raise ValueError(f"batch_size must be 1 to {MAX_ORDERS_PER_BATCH}")
    batch: list[PreparedOrder] = []
    size = 2  # the brackets
    for order in orders:
        extra = len(order.body) + (1 if batch else 0)
        if batch and (len(batch) == batch_size or size + extra > max_bytes):
            yield batch
            batch, size, extra = [], 2, len(order.body)
        batch.append(order)
        size += extra
    if batch:
        yield batch


def _error_details(response: httpx.Response) -> tuple[str, str, list[FieldError]]:
    """(code, message, field errors) from an error answer: the functions' body, or the gateway's."""
    try:
        detail = ErrorResponse.model_validate_json(response.content).error
        return detail.code, detail.message, list(detail.fields or [])
    except ValidationError:
        pass
    message = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]  # API Gateway's own answers: {"message": "..."}
    except ValueError:
        if response.text:
            message = response.text[:200]
    return f"http_{response.status_code}", message, []


def _is_refusal(status: int, code: str) -> bool:
    return status in REFUSAL_STATUSES or (status == 409 and code == KEY_REUSED_CODE)


def _refusal_errors(code: str, message: str, fields: list[FieldError]) -> list[FieldError]:
    return fields or [FieldError(field="body", message=message, type=code)]


class OrderpipeClient:
    """A client of one orderpipe API.

    `base_url` is the API's root (with the stage for API Gateway, e.g.
    `https://abc.execute-api.eu-west-1.amazonaws.com/prod`). `auth` is an httpx auth or several
    (see `orderpipe_client.auth`); `api_key` is a shortcut for `ApiKeyAuth(api_key)`.
    `max_connections` bounds the connection pool (and `submit_many`'s parallel requests).
    `key_namespace` is mixed into every derived Idempotency-Key (the server already keeps each
    producer's keys apart): one producer's two imports of the same content get two sets of orders.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | Sequence[httpx.Auth] | None = None,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_connections: int = 10,
        key_namespace: str = "",
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the base URL must start with http:// or https://, not {base_url!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        auths = list(auth) if isinstance(auth, Sequence) else [auth]
        combined = combine(ApiKeyAuth(api_key) if api_key else None, *auths)
        self.retry = retry or RetryPolicy()
        self.key_namespace = key_namespace
        self.max_connections = max_connections
        self._rng = rng or random.Random()
        self._http = httpx.Client(
            base_url=base_url,
            auth=combined,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={
                "user-agent": f"orderpipe-client/{__version__}",
                "accept": "application/json",
                **(headers or {}),
            },
            transport=transport,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OrderpipeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- keys ------------------------------------------------------------------------------------

    def prepare(self, order: Any, *, index: int = 0, idempotency_key: str | None = None) -> PreparedOrder:
        """The order's canonical body and key; ValueError/TypeError when it is not JSON data."""
        value = keys.order_json_value(order)
        body = keys.canonical_json(value)
        key = keys.order_key(value, body=body, namespace=self.key_namespace, explicit=idempotency_key)
        return PreparedOrder(index=index, key=key, body=body)

    def batch_key(self, orders: Sequence[PreparedOrder]) -> str:
        return keys.batch_key(
            [order.key for order in orders], [order.body for order in orders], namespace=self.key_namespace
        )

    # -- one order -------------------------------------------------------------------------------

    def submit(
        self, order: Any, *, idempotency_key: str | None = None, cancel: threading.Event | None = None
    ) -> Accepted:
        """POST one order; the answer once it is queued.

        Raises OrderRejectedError (refused, with field errors), SubmitFailedError (not accepted
        within the retry budget: safe to call again), AuthenticationError, UnexpectedResponseError.
        """
        prepared = self.prepare(order, idempotency_key=idempotency_key)
        response = self._send(
            "POST",
            "/orders",
            body=prepared.body,
            key=prepared.key,
            deadline_at=time.monotonic() + self.retry.deadline,
            cancel=cancel,
        )
        status = response.status_code
        if 200 <= status < 300:
            return Accepted.model_validate_json(response.content)
        code, message, fields = _error_details(response)
        if _is_refusal(status, code):
            raise OrderRejectedError(message, status=status, errors=_refusal_errors(code, message, fields))
        raise self._unusable(response, message)

    # -- batches ---------------------------------------------------------------------------------

    def submit_batch(
        self,
        orders: Sequence[Any],
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[OrderOutcome]:
        """POST up to 100 orders as one batch; one outcome per order, in order (`index` = position)."""
        if not 1 <= len(orders) <= MAX_ORDERS_PER_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_ORDERS_PER_BATCH} orders")
        explicit = list(idempotency_keys) if idempotency_keys is not None else [None] * len(orders)
        local: list[OrderOutcome] = []
        prepared: list[PreparedOrder] = []
        for index, (order, key) in enumerate(zip(orders, explicit, strict=True)):
            outcome = self._prepare_or_reject(order, index=index, key=key)
            if isinstance(outcome, OrderOutcome):
                local.append(outcome)
            else:
                prepared.append(outcome)
        sent = self.submit_prepared(prepared, cancel=cancel) if prepared else []
        return sorted([*local, *sent], key=lambda outcome: outcome.index)

    def submit_prepared(
        self,
        orders: Sequence[PreparedOrder],
        *,
        batch_key: str | None = None,
        listener: BatchListener | None = None,
        cancel: threading.Event | None = None,
    ) -> list[OrderOutcome]:
        """POST prepared orders as one batch request (the bulk importer's entry point).

        `batch_key` replaces the derived key (to re-send a request exactly as it was first sent).
        Orders the API reports `failed` (valid, but not queued) are re-sent on their own, under the
        key of that smaller batch, until they are accepted or the retry budget is spent. Returns one
        outcome per order, in the given order (`index` is each PreparedOrder's own), except for
        unqueued orders the listener no longer wants re-sent (`pending` said False).
        """
        if not 1 <= len(orders) <= MAX_ORDERS_PER_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_ORDERS_PER_BATCH} orders")
        listener = listener or _Silent()
        deadline_at = time.monotonic() + self.retry.deadline
        outcomes: dict[int, OrderOutcome] = {}
        pending = list(orders)
        key = batch_key or self.batch_key(pending)
        round_number = 0
        while pending:
            round_number += 1
            listener.sending(key, [order.index for order in pending])
            try:
                response = self._send(
                    "POST",
                    "/orders/batch",
                    body=keys.batch_body([order.body for order in pending]),
                    key=key,
                    deadline_at=deadline_at,
                    cancel=cancel,
                )
            except SubmitFailedError as error:
                failed = [self._failed(order, key, str(error)) for order in pending]
                outcomes.update((outcome.index, outcome) for outcome in failed)
                listener.settled(failed)
                break
            settled, unqueued = self._read_batch_answer(response, pending, key)
            outcomes.update((outcome.index, outcome) for outcome in settled)
            listener.settled(settled)
            unqueued = [order for order in unqueued if listener.pending(order.index)]
            if not unqueued:
                break
            problem = self._resend_problem(round_number, deadline_at, cancel)
            if problem is not None:
                failed = [
                    self._failed(order, key, f"the queue did not take it; {problem}") for order in unqueued
                ]
                outcomes.update((outcome.index, outcome) for outcome in failed)
                listener.settled(failed)
                break
            log.debug("re-sending %d orders the queue did not take", len(unqueued))
            pending = unqueued
            key = self.batch_key(pending)  # another body needs another key (the old one would replay)
        return [outcomes[order.index] for order in orders if order.index in outcomes]

    def _resend_problem(
        self, round_number: int, deadline_at: float, cancel: threading.Event | None
    ) -> str | None:
        """Wait before re-sending unqueued orders; why not to, when it should not."""
        if round_number >= self.retry.max_attempts:
            return f"gave up after {round_number} rounds"
        delay = self.retry.delay(round_number, None, self._rng)
        if time.monotonic() + delay > deadline_at:
            return f"gave up at the {self.retry.deadline:g} s deadline"
        sleep_unless_cancelled(delay, cancel)
        return None

    def _read_batch_answer(
        self, response: httpx.Response, pending: Sequence[PreparedOrder], key: str
    ) -> tuple[list[OrderOutcome], list[PreparedOrder]]:
        """(final outcomes, orders to send again) from a batch answer."""
        status = response.status_code
        if 200 <= status < 300:
            try:
                answer = BatchAccepted.model_validate_json(response.content)
            except ValidationError as error:
                raise UnexpectedResponseError(
                    f"the batch answer is not a BatchAccepted: {error}", status=status
                ) from None
            by_position = {result.index: result for result in answer.results}
            settled: list[OrderOutcome] = []
            unqueued: list[PreparedOrder] = []
            for position, order in enumerate(pending):
                result = by_position.get(position)
                if result is None or result.status == "failed":
                    unqueued.append(order)
                elif result.status == "accepted":
                    settled.append(
                        OrderOutcome(
                            index=order.index,
                            status="accepted",
                            idempotency_key=key,
                            order_id=result.order_id,
                        )
                    )
                else:
                    settled.append(
                        OrderOutcome(
                            index=order.index,
                            status="rejected",
                            idempotency_key=key,
                            errors=tuple(result.errors or ()),
                            message="the order is not valid",
                        )
                    )
            return settled, unqueued
        code, message, fields = _error_details(response)
        if not _is_refusal(status, code):
            raise self._unusable(response, message)
        # A batch refused as a whole: fields name "<position>.<field>" (422: no order valid), or the
        # whole request ("body", a header): those apply to every order.
        own: dict[int, list[FieldError]] = {}
        shared: list[FieldError] = []
        for field_error in fields:
            head, _, rest = field_error.field.partition(".")
            if head.isdigit() and rest and int(head) < len(pending):
                own.setdefault(int(head), []).append(field_error.model_copy(update={"field": rest}))
            else:
                shared.append(field_error)
        general = _refusal_errors(code, message, shared)
        return [
            OrderOutcome(
                index=order.index,
                status="rejected",
                idempotency_key=key,
                errors=tuple(own.get(position) or general),
                message=message,
            )
            for position, order in enumerate(pending)
        ], []

    def submit_many(
        self,
        orders: Iterable[Any],
        *,
        batch_size: int = MAX_ORDERS_PER_BATCH,
        max_connections: int | None = None,
        key_for: Callable[[Any], str | None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[OrderOutcome]:
        """Submit any number of orders through `POST /orders/batch`; yield one outcome per order, in order.

        Orders are grouped into consecutive batches (see `plan_batches`), sent by at most
        `max_connections` parallel requests (default: the client's pool size). The iterable is
        read lazily, a bounded number of batches ahead. `key_for(order)` may give an order's own
        Idempotency-Key (None: derived). Re-running the same input is safe: the same orders make
        the same batches, with the same keys.
        """
        workers = min(max_connections or self.max_connections, self.max_connections)
        # Set when the caller stops iterating early (unless the caller owns the event): batches
        # still retrying give up at once instead of running out their deadline.
        stop = cancel or threading.Event()
        ready: dict[int, OrderOutcome] = {}
        in_flight: deque[Future[list[OrderOutcome]]] = deque()

        def prepared_orders() -> Iterator[PreparedOrder]:
            for index, order in enumerate(orders):
                outcome = self._prepare_or_reject(order, index=index, key=key_for(order) if key_for else None)
                if isinstance(outcome, OrderOutcome):
                    ready[index] = outcome
                else:
                    yield outcome

        next_index = 0
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="orderpipe-submit")
        try:
            batches = plan_batches(prepared_orders(), batch_size=batch_size)
            exhausted = False
            while True:
                # Keep up to two batches per connection queued, then hand out what is done, in order.
                while not exhausted and len(in_flight) < 2 * workers:
                    batch = next(batches, None)
                    if batch is None:
                        exhausted = True
                    else:
                        in_flight.append(executor.submit(self.submit_prepared, batch, cancel=stop))
                if in_flight:
                    ready.update((outcome.index, outcome) for outcome in in_flight.popleft().result())
                while next_index in ready:
                    yield ready.pop(next_index)
                    next_index += 1
                if exhausted and not in_flight:
                    break
            for index in sorted(ready):  # local rejections after the last batch
                yield ready[index]
        finally:
            if in_flight and cancel is None:
                stop.set()
            executor.shutdown(wait=True, cancel_futures=True)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, order_id: uuid.UUID | str, *, cancel: threading.Event | None = None) -> Order | None:
        """The stored order, or None while it is unknown or not yet written (a 404)."""
        response = self._get(order_id, deadline_at=time.monotonic() + self.retry.deadline, cancel=cancel)
        return self._order_or_none(response)

    def wait_until_readable(
        self, order_id: uuid.UUID | str, timeout: float = 30.0, *, cancel: threading.Event | None = None
    ) -> Order:
        """Poll `GET /orders/{order_id}` until it answers the order, waiting as its 404's Retry-After says.

        The last poll happens at the deadline. Raises OrderNotReadableError after `timeout` seconds.
        """
        deadline_at = time.monotonic() + timeout
        polls = 0
        while True:
            polls += 1
            try:
                response = self._get(order_id, deadline_at=deadline_at, cancel=cancel)
            except SubmitFailedError as error:
                raise OrderNotReadableError(f"order {order_id} not readable: {error}") from error
            order = self._order_or_none(response)
            if order is not None:
                return order
            remaining = deadline_at - time.monotonic()
            if remaining <= 0:
                raise OrderNotReadableError(
                    f"order {order_id} was not readable within {timeout:g} s ({polls} polls)"
                )
            hint = parse_retry_after(response.headers.get("retry-after"))
            wait = max(MIN_POLL_SECONDS, DEFAULT_POLL_SECONDS if hint is None else hint)
            sleep_unless_cancelled(min(wait, remaining), cancel)

    def _get(
        self, order_id: uuid.UUID | str, *, deadline_at: float, cancel: threading.Event | None
    ) -> httpx.Response:
        parsed = order_id if isinstance(order_id, uuid.UUID) else uuid.UUID(str(order_id))
        return self._send(
            "GET", f"/orders/{parsed}", body=None, key=None, deadline_at=deadline_at, cancel=cancel
        )

    def _order_or_none(self, response: httpx.Response) -> Order | None:
        if response.status_code == 200:
            return Order.model_validate_json(response.content)
        if response.status_code == 404:
            return None
        _, message, _ = _error_details(response)
        raise self._unusable(response, message)

    # -- the one place requests are sent and retried ---------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: str | None,
        key: str | None,
        deadline_at: float,
        cancel: threading.Event | None,
    ) -> httpx.Response:
        """The first answer that is not worth retrying; SubmitFailedError when the budget runs out.

        Retried: connection errors and timeouts (the request may or may not have arrived: it is
        sent again with the same key and body) and RETRYABLE_STATUSES, waiting at least Retry-After.
        """
        headers = {"content-type": "application/json"} if body is not None else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        content = body.encode("ascii") if body is not None else None
        last: str = "no attempt"
        last_status: int | None = None
        attempt = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise OperationCancelledError(f"{method} {path} cancelled")
            attempt += 1
            retry_after: float | None = None
            try:
                response = self._http.request(method, path, content=content, headers=headers)
            except RETRYABLE_TRANSPORT_ERRORS as error:
                last, last_status = f"{type(error).__name__}: {error or 'no detail'}", None
            else:
                if response.status_code not in RETRYABLE_STATUSES or _is_refusal(
                    response.status_code, _error_details(response)[0]
                ):
                    return response
                last_status = response.status_code
                last = f"HTTP {response.status_code}: {_error_details(response)[1]}"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt >= self.retry.max_attempts:
                raise SubmitFailedError(
                    f"{method} {path}: gave up after {attempt} attempts; last: {last}",
                    attempts=attempt,
                    last_status=last_status,
                )
            delay = self.retry.delay(attempt, retry_after, self._rng)
            if time.monotonic() + delay > deadline_at:
                raise SubmitFailedError(
                    f"{method} {path}: gave up after {attempt} attempts, the next one "
                    f"({delay:.1f} s away) would be past the deadline; last: {last}",
                    attempts=attempt,
                    last_status=last_status,
                )
            log.debug("%s %s attempt %d: %s; retrying in %.2f s", method, path, attempt, last, delay)
            sleep_unless_cancelled(delay, cancel)

    @staticmethod
    def _unusable(response: httpx.Response, message: str) -> Exception:
        status = response.status_code
        if status in (401, 403):
            hint = (
                " (an unknown route: is the base URL right, with its stage?)"
                if "Authentication Token" in message
                else ""
            )
            return AuthenticationError(f"HTTP {status}: {message}{hint}", status=status)
        return UnexpectedResponseError(
            f"{response.request.method} {response.request.url.path}: unexpected HTTP {status}: {message}",
            status=status,
        )

    def _prepare_or_reject(self, order: Any, *, index: int, key: str | None) -> PreparedOrder | OrderOutcome:
        try:
            return self.prepare(order, index=index, idempotency_key=key)
        except (TypeError, ValueError) as error:
            return OrderOutcome(
                index=index,
                status="rejected",
                idempotency_key="",
                errors=(FieldError(field="body", message=str(error), type="not_json"),),
                message="not sent: the order is not JSON data",
            )

    @staticmethod
    def _failed(order: PreparedOrder, key: str, message: str) -> OrderOutcome:
        return OrderOutcome(index=order.index, status="failed", idempotency_key=key, message=message)
