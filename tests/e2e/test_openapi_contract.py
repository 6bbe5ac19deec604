"""The API answers as docs/openapi.json says, checked as a producer's tooling would check it.

Schemathesis (the CLI, as a new user runs it) generates requests from the committed document, valid
and invalid, over all four phases, against the running local pipeline, and applies every check;
then the document and its rendered view are served by the runtime from local assets.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from orderpipe_devenv.openapi import DEFAULT_OUTPUT
from orderpipe_devenv.runtime.docs import CONTENT_SECURITY_POLICY
from orderpipe_devenv.runtime.pipeline import LocalProducer, LocalRuntime
from tests.e2e.conftest import auth_headers_for

pytestmark = pytest.mark.cassandra

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Bounded so the run takes a couple of minutes on a busy 2-core machine; the seed makes a failure
# reproducible (raise the examples, or drop the seed, to search wider by hand).
MAX_EXAMPLES = 20
SEED = 20261124
# The one check left out: after `POST /orders` answers 202 the order is queued, not stored, and
# `GET /orders/{order_id}` answers 404 + Retry-After until the writer has stored it (the API's
# asynchronous contract, docs/architecture.md "Contracts"). Schemathesis' stateful phase follows the POST's id to
# the GET at once and calls that 404 "created resource not found".
EXCLUDED_CHECKS = ("ensure_resource_availability",)


def schemathesis_command(url: str, headers: dict[str, str]) -> list[str]:
    command = [str(SCHEMATHESIS), "--no-color", "run", str(DEFAULT_OUTPUT), "--url", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return [
        *command,
        "--checks",
        "all",
        "--exclude-checks",
        ",".join(EXCLUDED_CHECKS),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
    ]


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_difference_between_the_document_and_the_api(
    local_runtime: LocalRuntime, producer: LocalProducer, tmp_path: Path
) -> None:
    # Given the committed document and the running pipeline, authenticated as a producer
    command = schemathesis_command(local_runtime.url, auth_headers_for(producer))
    # When schemathesis runs every phase and every check against it (from a scratch directory: it
    # keeps a cache of failures in the working directory)
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=540, check=False)
    # Then it reports no failure, and it did test all three operations
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:]
    assert re.search(r"Operations:\s+3 selected / 3 total", report), report[-3000:]
    assert re.search(r"Tested:\s+3", report), report[-3000:]


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def test_the_runtime_serves_the_document_and_a_docs_page_from_local_assets(
    local_runtime: LocalRuntime,
) -> None:
    with httpx.Client(base_url=local_runtime.url, timeout=30) as http:
        # Given the running pipeline (no credentials: the docs are public locally)
        # When the document is fetched, Then it is the committed one
        document = http.get("/openapi.json")
        assert document.status_code == 200
        assert document.headers["content-type"] == "application/json"
        assert document.json() == json.loads(DEFAULT_OUTPUT.read_text())
        # When the docs page is fetched
        page = http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # Then it names only same-origin assets, each of which answers, and the browser is told so
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        references = _References()
        references.feed(page.text)
        assert references.urls, page.text
        assert not re.search(r"https?://", page.text), page.text
        for url in references.urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = http.get(url)
            assert asset.status_code == 200, url
        bundle = http.get("/docs/swagger-ui-bundle.js")
        assert len(bundle.content) > 500_000  # Swagger UI itself, not a stub
        assert b'url: "/openapi.json"' in http.get("/docs/init.js").content


def test_the_docs_page_can_authorize_with_client_credentials_at_the_documents_token_url(
    local_runtime: LocalRuntime, producer: LocalProducer
) -> None:
    # Given the document's oauth2 tokenUrl, resolved as Swagger UI resolves it: against the origin
    # the document was fetched from (the running local pipeline)
    document = httpx.get(f"{local_runtime.url}/openapi.json", timeout=30).json()
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    token_url = httpx.URL(f"{local_runtime.url}/openapi.json").join(flow["tokenUrl"])
    assert producer.client_id and producer.client_secret
    # When Authorize posts the producer's client credentials there (client_secret_basic)
    answer = httpx.post(
        token_url,
        data={"grant_type": "client_credentials", "scope": "orders/write orders/read"},
        auth=(producer.client_id, producer.client_secret),
        timeout=30,
    )
    # Then it gets a bearer token, which the API accepts for a POST
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    posted = httpx.post(
        f"{local_runtime.url}/orders",
        json={
            "customer_id": "cust-42",
            "currency": "EUR",
            "items": [{"sku": "S", "quantity": 1, "unit_price": "1"}],
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert posted.status_code == 202, posted.text
    # ...and a wrong secret is refused there as the issuer refuses it (no token)
    refused = httpx.post(
        token_url,
        data={"grant_type": "client_credentials"},
        auth=(producer.client_id, "not-the-secret"),
        timeout=30,
    )
    assert refused.status_code in (400, 401) and "access_token" not in refused.text
