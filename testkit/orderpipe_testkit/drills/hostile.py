"""Drill 6: hostile input. Schemathesis generates requests from docs/openapi.json (valid and
invalid, for every operation) against the local runtime's API; plus hand-written nasty cases.

Promise: never a 5xx (a 503 + Retry-After, a dependency too slow for the request's deadline, is
retried once as told and must not come again), never a hang (every request answers within its
timeout), and each hand-written case gets a clear 4xx with a JSON error body.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from orderpipe_devenv.runtime.pipeline import LocalRuntime
from orderpipe_testkit.auth import ClientCredentialsAuth, for_producer
from orderpipe_testkit.drills.common import DrillReport, api_client, check
from orderpipe_testkit.sample_orders import order_payload

OPENAPI_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
REQUEST_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class HandCase:
    name: str
    method: str
    path: str
    body: bytes | None
    expected: frozenset[int]
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


def _order_with(**changes: Any) -> bytes:
    payload = order_payload(77)
    for dotted, value in changes.items():
        target: Any = payload
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return json.dumps(payload).encode()


def _raw_order(fragment_for_price: str) -> bytes:
    return (
        b'{"customer_id": "c-1", "currency": "EUR", "items": [{"sku": "S-1", "quantity": 1, "unit_price": '
        + fragment_for_price.encode()
        + b"}]}"
    )


INVALID = frozenset({400, 422})
# Share of the generated requests per operation (cheap single orders and reads get more).
GENERATION_WEIGHTS = {"POST /orders": 6, "POST /orders/batch": 1, "GET /orders/{order_id}": 4}


def hand_written_cases() -> list[HandCase]:
    return [
        HandCase(
            "huge body (2 MB)",
            "POST",
            "/orders",
            b'{"customer_id": "' + b"x" * 2_000_000 + b'"}',
            frozenset({413}),
        ),
        HandCase(
            "huge batch body (3 MB)",
            "POST",
            "/orders/batch",
            b"[" + b'{"a": 1},' * 330_000 + b"{}]",
            frozenset({413}),
        ),
        HandCase(
            "deep nesting (arrays)",
            "POST",
            "/orders",
            b"[" * 15_000 + b"]" * 15_000,
            frozenset({400, 413, 422}),
        ),
        HandCase(
            "deep nesting (objects)",
            "POST",
            "/orders",
            b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
            frozenset({400, 413, 422}),
        ),
        HandCase(
            "deep nesting in a field",
            "POST",
            "/orders",
            _order_with(customer_id=[[[[[[[[[["x"]]]]]]]]]]),
            INVALID,
        ),
        HandCase(
            "wrong type: quantity as text",
            "POST",
            "/orders",
            _order_with(items__0__quantity="three"),
            INVALID,
        ),
        HandCase(
            "wrong type: quantity as float", "POST", "/orders", _order_with(items__0__quantity=1.5), INVALID
        ),
        HandCase("wrong type: items as object", "POST", "/orders", _order_with(items={"sku": "x"}), INVALID),
        HandCase("wrong type: customer_id number", "POST", "/orders", _order_with(customer_id=42), INVALID),
        HandCase("wrong type: body is a string", "POST", "/orders", b'"an order"', INVALID),
        HandCase("wrong type: batch is an object", "POST", "/orders/batch", _order_with(), INVALID),
        HandCase(
            "unicode: emoji in customer_id",
            "POST",
            "/orders",
            _order_with(customer_id="cust-\U0001f4a5"),
            INVALID,
        ),
        HandCase("unicode: NUL in sku", "POST", "/orders", _order_with(items__0__sku="S\u0000KU"), INVALID),
        HandCase(
            "unicode: right-to-left override currency",
            "POST",
            "/orders",
            _order_with(currency="\u202eRUE"),
            INVALID,
        ),
        HandCase("unicode: lone surrogate escape", "POST", "/orders", b'{"customer_id": "\\ud800"}', INVALID),
        HandCase("invalid UTF-8 bytes", "POST", "/orders", b'{"customer_id": "\xff\xfe"}', INVALID),
        HandCase("negative amount", "POST", "/orders", _order_with(items__0__unit_price="-1.00"), INVALID),
        HandCase("NaN literal", "POST", "/orders", _raw_order("NaN"), INVALID),
        HandCase("NaN string", "POST", "/orders", _order_with(items__0__unit_price="NaN"), INVALID),
        HandCase("Infinity literal", "POST", "/orders", _raw_order("Infinity"), INVALID),
        HandCase("huge amount 1e400", "POST", "/orders", _raw_order("1e400"), INVALID),
        HandCase("huge amount 10^30", "POST", "/orders", _raw_order("1" + "0" * 30), INVALID),
        HandCase("three decimal places", "POST", "/orders", _raw_order('"1.005"'), INVALID),
        HandCase("huge quantity", "POST", "/orders", _order_with(items__0__quantity=10**30), INVALID),
        HandCase("negative quantity", "POST", "/orders", _order_with(items__0__quantity=-5), INVALID),
        HandCase("unknown currency", "POST", "/orders", _order_with(currency="XXY"), INVALID),
        HandCase("unknown field", "POST", "/orders", _order_with(discount="100%"), INVALID),
        HandCase("empty body", "POST", "/orders", b"", INVALID),
        HandCase("truncated JSON", "POST", "/orders", b'{"customer_id": ', INVALID),
        HandCase(
            "101 orders in a batch",
            "POST",
            "/orders/batch",
            json.dumps([order_payload(i) for i in range(101)]).encode(),
            frozenset({413, 422}),
        ),
        HandCase("empty batch", "POST", "/orders/batch", b"[]", INVALID),
        HandCase(
            "form-encoded body",
            "POST",
            "/orders",
            b"customer_id=c1",
            frozenset({415}),
            headers=(("content-type", "application/x-www-form-urlencoded"),),
        ),
        HandCase(
            "Idempotency-Key of 1,000 characters",
            "POST",
            "/orders",
            _order_with(),
            INVALID,
            headers=(("content-type", "application/json"), ("idempotency-key", "k" * 1000)),
        ),
        HandCase("bad UUID: word", "GET", "/orders/not-a-uuid", None, frozenset({400})),
        HandCase(
            "bad UUID: too long",
            "GET",
            "/orders/6b89698a-20e3-4621-8384-735888372b63aa",
            None,
            frozenset({400}),
        ),
        HandCase("bad UUID: unicode digits", "GET", "/orders/%D9%A1%D9%A2%D9%A3", None, frozenset({400})),
        HandCase("bad UUID: SQL-ish", "GET", "/orders/1%27%20OR%20%271%27%3D%271", None, frozenset({400})),
        HandCase("bad UUID: huge", "GET", "/orders/" + "a" * 5000, None, frozenset({400, 414})),
    ]


def run_hand_written(runtime: LocalRuntime) -> dict[str, tuple[int, bool]]:
    """name -> (status, answered with a JSON error body)."""
    results: dict[str, tuple[int, bool]] = {}
    with api_client(runtime, timeout=REQUEST_TIMEOUT_SECONDS) as api:
        for case in hand_written_cases():
            response = api.request(case.method, case.path, content=case.body, headers=dict(case.headers))
            try:
                body = response.json()
                # The functions' and the gateway's errors have one shape: {"error": {"code", "message"}}.
                error = body.get("error") if isinstance(body, dict) else None
                clear = isinstance(error, dict) and bool(error.get("code")) and bool(error.get("message"))
            except ValueError:
                clear = False
            results[case.name] = (response.status_code, clear)
    return results


def run_generated(
    runtime: LocalRuntime,
    *,
    requests: int,
    seed: int = 0,
    time_limit_seconds: float = 600,
    openapi_path: Path = OPENAPI_PATH,
    processes: int = 2,
) -> tuple[Counter[int], list[str]]:
    """Schemathesis cases (positive and negative, every operation) until `requests` were answered.

    Generation is CPU-bound (Hypothesis), so `processes` generators run side by side, each with its
    own seed and share. Returns (answers by status, failures: 5xx or no answer in time)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    shares = [requests // processes + (1 if i < requests % processes else 0) for i in range(processes)]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = [
            pool.submit(
                generate_and_send,
                runtime.url,
                bearer_token(runtime),
                share,
                seed * 100 + index,
                time_limit_seconds,
                str(openapi_path),
            )
            for index, share in enumerate(shares)
        ]
        for part in parts:
            part_statuses, part_failures = part.result()
            statuses.update(part_statuses)
            failures += part_failures
    return statuses, failures


def bearer_token(runtime: LocalRuntime) -> str:
    """An access token of the runtime's default producer (valid for an hour: longer than the drill)."""
    auth = for_producer(runtime.default_producer())
    if not isinstance(auth, ClientCredentialsAuth):
        raise RuntimeError("the hostile-input drill runs in jwt mode")
    return auth.token()


def generate_and_send(
    url: str,
    token: str,
    requests: int,
    seed: int,
    time_limit_seconds: float,
    openapi_path: str,
    workers: int = 3,
) -> tuple[Counter[int], list[str]]:
    """One generator process: schemathesis cases sent to `url` until `requests` were answered."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    document = json.loads(Path(openapi_path).read_text())
    # Generating batches of up to 100 orders costs ~0.2 s each; batches of up to 5 exercise the same
    # validation (the 100 bound itself is a hand-written case) at a fraction of the time.
    batch_body = document["paths"]["/orders/batch"]["post"]["requestBody"]["content"]["application/json"]
    batch_body["schema"]["maxItems"] = min(5, batch_body["schema"].get("maxItems", 5))
    # Every request carries a valid token (set in `send`, over whatever was generated): the security
    # is reduced to that one header, which schemathesis can generate (it cannot do OAuth 2.0 flows),
    # and which gives negative mode something to break even on GET, whose only parameter is free text.
    document.setdefault("components", {})["securitySchemes"] = {
        "token": {"type": "apiKey", "in": "header", "name": "Authorization"}
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["security"] = [{"token": []}]
    schema = schemathesis.openapi.from_dict(document)
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    in_flight = threading.Semaphore(workers * 2)
    deadline = time.monotonic() + time_limit_seconds

    def send(client: httpx.Client, case: Any) -> None:
        try:
            kwargs = case.as_transport_kwargs(base_url=url)
            # Always a valid token: a request API Gateway refuses never reaches the function.
            headers = {**(kwargs.get("headers") or {}), "Authorization": f"Bearer {token}"}
            headers.pop("x-api-key", None)

            def request() -> httpx.Response:
                return client.request(
                    kwargs["method"],
                    kwargs["url"],
                    headers=headers,
                    params=kwargs.get("params"),
                    content=_content(kwargs),
                )

            response = request()
            if response.status_code == 503 and "retry-after" in response.headers:
                # The designed answer of a dependency too slow for the request's deadline (moto on a
                # busy machine): the client retries as told. A 503 for the input itself would stay.
                with lock:
                    statuses[503] += 1
                time.sleep(min(2.0, float(response.headers["retry-after"])))
                response = request()
            with lock:
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(
                        f"{response.status_code} {case.method} {case.formatted_path}: {case.body!r:.200}"
                    )
        except httpx.LocalProtocolError:
            pass  # the HTTP client itself refuses to send it (e.g. a NUL in a header): no request was made
        except httpx.HTTPError as error:
            with lock:
                statuses[0] += 1
                failures.append(f"no answer ({type(error).__name__}) {case.method} {case.formatted_path}")
        finally:
            in_flight.release()

    weights = [GENERATION_WEIGHTS.get(operation.label, 2) for operation in operations]
    per_round = {
        operation.label: max(1, -(-requests * weight // (sum(weights) * len(modes))))
        for operation, weight in zip(operations, weights, strict=True)
    }
    round_number = 0
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client, ThreadPoolExecutor(workers) as pool:
        futures: list[Future[None]] = []
        while sum(statuses.values()) < requests and time.monotonic() < deadline:
            for operation in operations:
                for mode in modes:

                    @hypothesis_seed(seed * 1000 + round_number)
                    @settings(
                        max_examples=per_round[operation.label],
                        deadline=None,
                        database=None,
                        phases=[Phase.generate],
                        suppress_health_check=list(HealthCheck),
                        print_blob=False,
                    )
                    @given(case=operation.as_strategy(generation_mode=mode))
                    def generate(case: Any) -> None:
                        if time.monotonic() > deadline:
                            return
                        in_flight.acquire()
                        futures.append(pool.submit(send, client, case))

                    generate()
            round_number += 1
            for future in futures:
                future.result()
            futures.clear()
    return statuses, failures


def _content(kwargs: dict[str, Any]) -> bytes | None:
    if "json" in kwargs and kwargs["json"] is not None:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data")
    if data is None:
        return None
    return data if isinstance(data, bytes) else str(data).encode()


def hostile_input(
    runtime: LocalRuntime, *, requests: int = 5000, seed: int = 0, time_limit_seconds: float = 600
) -> DrillReport:
    report = DrillReport("hostile")
    started = time.monotonic()
    hand = run_hand_written(runtime)
    unclear = {name: status for name, (status, clear) in hand.items() if not clear}
    expected = {case.name: case.expected for case in hand_written_cases()}
    wrong = {name: status for name, (status, _clear) in hand.items() if status not in expected[name]}
    statuses, failures = run_generated(
        runtime, requests=requests, seed=seed, time_limit_seconds=time_limit_seconds
    )
    answered = sum(count for status, count in statuses.items() if status)
    report.sent = answered + statuses.get(0, 0) + len(hand)
    report.accepted = statuses.get(202, 0)
    report.details["generated requests"] = sum(statuses.values())
    report.details["answers"] = dict(sorted(statuses.items()))
    report.details["hand-written cases"] = f"{len(hand)}, all clear 4xx: {not wrong and not unclear}"
    report.details["5xx or no answer"] = len(failures)
    if failures:
        report.details["failures (first 5)"] = failures[:5]
    if wrong:
        report.details["hand-written with the wrong status"] = wrong
    if unclear:
        report.details["hand-written without a JSON error"] = unclear
    report.seconds = time.monotonic() - started
    check(not failures, f"{len(failures)} requests got a 5xx or no answer: {failures[:3]}")
    check(not wrong, f"hand-written cases with the wrong status: {wrong}")
    check(not unclear, f"hand-written cases without a JSON error body: {unclear}")
    check(
        report.details["generated requests"] >= requests,
        f"only {report.details['generated requests']} requests generated",
    )
    return report
