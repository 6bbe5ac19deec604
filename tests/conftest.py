"""Root fixtures: each concern lives in its own module under tests/fixtures/."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

# Functions log/trace/emit metrics through Powertools; in tests there is no X-Ray daemon.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "orderpipe-tests")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "orderpipe")

pytest_plugins = [
    "tests.fixtures.aws",
    "tests.fixtures.cassandra",
    "tests.fixtures.pipeline",
]


@dataclass
class FakeLambdaContext:
    function_name: str = "orderpipe-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:orderpipe-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
