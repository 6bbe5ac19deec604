"""Root fixtures: each concern lives in its own module under tests/fixtures/."""

from __future__ import annotations

import os

import pytest

from orderpipe_devenv.lambda_events import LocalLambdaContext

# Functions log/trace/emit metrics through Powertools; in tests there is no X-Ray daemon.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "orderpipe-tests")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "orderpipe")

pytest_plugins = [
    "tests.fixtures.aws",
    "tests.fixtures.cassandra",
    "tests.fixtures.pipeline",
    "tests.fixtures.toxiproxy",
    "tests.fixtures.secured_cassandra",
]


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="orderpipe-test")
