"""Helpers shared by the benchmarks: environment scoping, alternating rounds, medians."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from orderpipe_common.settings import PowertoolsSettings
from orderpipe_devenv.cassandra.config import CommitlogSync

# Functions run in-process here: no X-Ray, no EMF lines on stdout, quiet logs.
QUIET_POWERTOOLS = PowertoolsSettings.environment(
    powertools_trace_disabled=True,
    powertools_metrics_disabled=True,
    powertools_log_level="WARNING",
    powertools_metrics_namespace=PowertoolsSettings.default("powertools_metrics_namespace"),
)
# The AWS SDK's own variables (no settings model of ours owns them): named here only.
LOCAL_AWS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}
# The benchmarks' own Cassandra nodes sync their commit log every 10 s (Cassandra's default, and what
# a deployed cluster of 3 replicas at LOCAL_QUORUM may run: docs/deploy.md, section 4 item 5), not
# before each acknowledgement as the local pipeline's nodes do: an fsync per write caps a node on
# this machine's disk below what one writer invocation sustains, so it would bound the writer and its
# baselines alike. The benchmarks measure the client; none of them kills a node.
BENCHMARK_COMMITLOG_SYNC: CommitlogSync = "periodic"
# Any AWS call made where none should be fails fast on the discard port.
NO_NETWORK_ENDPOINT = "http://127.0.0.1:9"


def aws_endpoint(url: str) -> dict[str, str]:
    """The environment that sends the AWS SDK to `url`."""
    return {"AWS_ENDPOINT_URL": url}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def alternating_rounds(
    variants: dict[str, Callable[[], float]], rounds: int, progress: Callable[[str], None] | None = None
) -> dict[str, list[float]]:
    """Each variant once per round, order reversed every other round (drift hits all alike)."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for number in range(rounds):
        names = list(variants) if number % 2 == 0 else list(reversed(variants))
        for name in names:
            value = variants[name]()
            samples[name].append(value)
            if progress is not None:
                progress(f"round {number + 1}/{rounds} {name}: {value:.4g}")
    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


def spread_percent(values: list[float]) -> float:
    """(max - min) / median, in percent: the round-to-round noise of one figure."""
    middle = statistics.median(values)
    return round((max(values) - min(values)) / middle * 100, 1) if middle else 0.0
