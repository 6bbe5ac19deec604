"""Helpers shared by the benchmarks: environment scoping, alternating rounds, medians."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Functions run in-process here: no X-Ray, no EMF lines on stdout, quiet logs.
QUIET_POWERTOOLS = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_NAMESPACE": "orderpipe",
}
LOCAL_AWS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}


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
