"""The example in clients/python/README.md runs, against the scripted API on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.scripted_orders_api import ScriptedOrdersApi

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"

pytestmark = pytest.mark.timeout(60)


def test_the_readme_example_submits_reads_back_and_submits_many(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the README's first Python example, pointed at a scripted API with its API key
    api = ScriptedOrdersApi(api_key="KEY", readable_after_polls=1)
    url = api.start()
    example = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)[0]
    assert "http://127.0.0.1:8080" in example
    try:
        # When it runs
        exec(example.replace("http://127.0.0.1:8080", url), {})  # noqa: S102 - the README's own code
    finally:
        api.stop()
    # Then it stored the single order and the thousand, and printed the order it read back
    assert len(api.stored) == 1001
    assert "cust-42" in capsys.readouterr().out
