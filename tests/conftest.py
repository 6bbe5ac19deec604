"""Root fixtures: each concern lives in its own module under tests/fixtures/."""

from __future__ import annotations

import os
import tempfile

import pytest

from orderpipe_devenv.lambda_events import LocalLambdaContext

# Functions log/trace/emit metrics through Powertools; in tests there is no X-Ray daemon.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "orderpipe-tests")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "orderpipe")
# A developer's running `orderpipe run` must not leak into the tests (its state file tells tools where
# it listens), nor a test's `orderpipe run` overwrite the developer's state file.
os.environ["ORDERPIPE_STATE_DIR"] = tempfile.mkdtemp(prefix="orderpipe-test-state-")

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
