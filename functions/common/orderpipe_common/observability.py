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

Every line names its service: the warnings of the libraries the functions use (the Cassandra
driver's "Host ... has been marked down", botocore's retries, urllib3's connection pool) go through
the same handler and formatter as the function's own lines, JSON with the service, instead of the
bare text Lambda's (or Python's last-resort) handler would print.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from orderpipe_common.settings import PowertoolsSettings

os.environ.setdefault(
    "POWERTOOLS_METRICS_NAMESPACE", PowertoolsSettings.default("powertools_metrics_namespace")
)

logger = Logger()
metrics = Metrics()

# Libraries whose warnings belong in a function's log (WARNING and above; below it they stay quiet).
LIBRARY_LOGGERS = ("cassandra", "botocore", "urllib3")


def _route_library_warnings() -> None:
    handler = logging.StreamHandler(getattr(logger.registered_handler, "stream", None))
    handler.setFormatter(logger.registered_formatter)
    handler.setLevel(logging.WARNING)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.addHandler(handler)
        library.propagate = False  # else Lambda's root handler prints the same line again, bare


_route_library_warnings()


def follow_environment() -> None:
    """Take the service name and log level from the environment as it is now.

    Logger and Metrics read them when this module is imported. A process whose environment is set
    later (a local runtime worker: a spawned process re-imports its parent's main module, which may
    import this one, before the function's environment is applied) calls this once it is set.
    """
    given = PowertoolsSettings.from_environment(os.environ)
    service = given.get("powertools_service_name")
    if service:
        logger.service = service
        logger.append_keys(service=service)
        metrics.service = service
    level = given.get("powertools_log_level")
    if level:
        logger.setLevel(level)


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


__all__ = [
    "LIBRARY_LOGGERS",
    "REQUEST_ID_ATTRIBUTE",
    "MetricUnit",
    "follow_environment",
    "logger",
    "metrics",
    "request_id",
    "trace_root",
]
