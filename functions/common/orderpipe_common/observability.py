"""Logger and Metrics: created here once, imported by every function; request correlation.

The service name comes from POWERTOOLS_SERVICE_NAME (set per function by the stack and the local
runtime); the namespace from POWERTOOLS_METRICS_NAMESPACE. Every handler stacks the decorators in
the same order:

    @logger.inject_lambda_context(...)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event, context): ...

Tracing is the platform's, with no tracing SDK in the bundles (docs/benchmarks.md, cold_init:
the AWS X-Ray SDK behind Powertools' Tracer is end-of-support and was most of every cold start).
Lambda's active tracing records each invocation (initialization, invocation, overhead) and API
Gateway's tracing the request; boto3 sends the invocation's trace header with every AWS call, so
SQS keeps it on each message (the `AWSTraceHeader` system attribute) and the writer's invocation
joins the same trace. Logs carry the rest: Powertools' Logger adds `xray_trace_id` to every line,
the API functions log the API Gateway request id as `correlation_id`, the ingest puts that id on
every message it enqueues (`REQUEST_ID_ATTRIBUTE`) and the writer logs each order with it, so one
Logs Insights query follows an order from the POST to its row.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from orderpipe_common.settings import PowertoolsSettings

os.environ.setdefault(
    "POWERTOOLS_METRICS_NAMESPACE", PowertoolsSettings.default("powertools_metrics_namespace")
)

logger = Logger()
metrics = Metrics()

# The SQS message attribute that carries the ingest's request id to the writer.
REQUEST_ID_ATTRIBUTE = "orderpipe-request-id"
# What Lambda puts in the environment for the current invocation's trace (Root=...;Parent=...;Sampled=...).
TRACE_HEADER_VARIABLE = "_X_AMZN_TRACE_ID"


def request_id() -> str | None:
    """The current request's id (API Gateway's, set by `inject_lambda_context`), if any."""
    correlation = logger.get_correlation_id()
    return str(correlation) if correlation else None


def trace_root(trace_header: str | None) -> str | None:
    """`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=...;Sampled=1` -> the Root id (what X-Ray shows)."""
    for part in (trace_header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


__all__ = ["REQUEST_ID_ATTRIBUTE", "MetricUnit", "logger", "metrics", "request_id", "trace_root"]
