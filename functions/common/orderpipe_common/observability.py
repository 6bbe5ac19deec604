"""Logger, Tracer and Metrics: created here once, imported by every function.

The service name comes from POWERTOOLS_SERVICE_NAME (set per function by the stack and the local
runtime); the namespace from POWERTOOLS_METRICS_NAMESPACE. Every handler stacks the decorators in
the same order:

    @logger.inject_lambda_context(...)
    @tracer.capture_lambda_handler
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event, context): ...
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from orderpipe_common.settings import PowertoolsSettings

os.environ.setdefault(
    "POWERTOOLS_METRICS_NAMESPACE", PowertoolsSettings.default("powertools_metrics_namespace")
)

logger = Logger()
tracer = Tracer()
metrics = Metrics()

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]
