"""Drill fixtures: one local runtime (short tuning, own moto, own keyspace) shared by the light
drills, on the session's Cassandra. The `heavy` drills (three JVMs) run only when asked for:
`pytest -m heavy tests/drills`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orderpipe_devenv.runtime.pipeline import LocalRuntime
from orderpipe_testkit.drills.common import drill_runtime


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "heavy: needs three Cassandra JVMs; run with `pytest -m heavy`")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "heavy" in (config.option.markexpr or ""):
        return
    heavy = [item for item in items if item.get_closest_marker("heavy")]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if not item.get_closest_marker("heavy")]


@pytest.fixture(scope="package")
def shared_runtime(cassandra_endpoint: Any) -> Iterator[LocalRuntime]:
    with drill_runtime(cassandra_endpoint, name="tests") as runtime:
        yield runtime
