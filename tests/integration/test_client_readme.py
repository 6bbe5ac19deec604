"""The examples in clients/python/README.md work as printed, against a scripted API on 127.0.0.1 that,
like the real one, accepts nothing without a bearer token (and issues tokens for client credentials)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scripted_orders_api import ScriptedOrdersApi

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
README_URL = "http://127.0.0.1:8080"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def api() -> Iterator[ScriptedOrdersApi]:
    server = ScriptedOrdersApi(bearer_tokens=set(), readable_after_polls=1)
    server.start()
    yield server
    server.stop()


def credentials_of(api: ScriptedOrdersApi) -> dict[str, str]:
    """The producer's client credentials as `orderpipe run` / `producers add` print them (an export line)."""
    client_id, secret = api.oauth_client
    return {
        "ORDERPIPE_TOKEN_URL": f"{api.url}/oauth2/token",
        "ORDERPIPE_CLIENT_ID": client_id,
        "ORDERPIPE_CLIENT_SECRET": secret,
    }


def readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.DOTALL)
    return next(block for block in blocks if containing in block)


def test_the_api_refuses_an_api_key_alone(api: ScriptedOrdersApi) -> None:
    # Given the scripted API requiring a bearer token, When a key alone is sent, Then it is a 401
    from orderpipe_client import OrderpipeClient
    from orderpipe_client.errors import AuthenticationError

    with OrderpipeClient(api.url, api_key="KEY") as client, pytest.raises(AuthenticationError):
        client.get("6f1c2b56-8a5e-4a57-9f0e-4c7d1c0e2a11")


def test_the_readme_example_submits_reads_back_and_submits_many(
    api: ScriptedOrdersApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the README's first Python example, with a producer's client credentials in the
    # environment as the README says, pointed at the scripted API
    for name, value in credentials_of(api).items():
        monkeypatch.setenv(name, value)
    example = readme_block("python", "OrderpipeClient(")
    assert README_URL in example
    # When it runs
    exec(example.replace(README_URL, api.url), {})  # noqa: S102 - the README's own code
    # Then it authenticated with a token, stored the single order and the thousand but the ten it
    # makes invalid, printed the order it read back and each refusal
    assert api.token_requests >= 1
    assert len(api.stored) == 1 + 990
    printed = capsys.readouterr().out
    assert "cust-42" in printed
    assert len(re.findall(r"^\d+ rejected ", printed, re.MULTILINE)) == 10


def test_the_readme_bulk_import_command_imports_a_file(api: ScriptedOrdersApi, tmp_path: Path) -> None:
    # Given a file of 300 orders and the README's import command, with the client credentials in the
    # environment (and no other orderpipe settings)
    with (tmp_path / "orders.jsonl").open("w") as source:
        for n in range(300):
            order = {"customer_id": f"cust-{n}", "currency": "EUR", "client_reference": f"po-{n}",
                     "items": [{"sku": "SKU-1", "quantity": 1, "unit_price": "9.99"}]}  # fmt: skip
            source.write(json.dumps(order) + "\n")
    printed = readme_block("bash", "orderpipe_client submit").replace("\\\n", " ")  # one command
    command = shlex.split(printed.replace(README_URL, api.url))
    assert command[0] == "python"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERPIPE_", "AWS_"))}
    # When it runs as printed (this environment's Python, the scripted API's URL)
    done = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=tmp_path,
        env={**environment, **credentials_of(api), "ORDERPIPE_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    # Then every order is accepted with a token, each line's outcome in the outcome file it names
    assert done.returncode == 0, done.stderr
    assert len(api.stored) == 300
    assert all(
        request.headers["authorization"].startswith("Bearer ") for request in api.posts("/orders/batch")
    )
    outcomes = [json.loads(line) for line in (tmp_path / "orders.outcome.jsonl").read_text().splitlines()]
    assert sum(1 for record in outcomes if record.get("status") == "accepted") == 300
