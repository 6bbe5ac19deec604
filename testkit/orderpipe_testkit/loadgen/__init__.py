"""The load generator behind `orderpipe load`: POST orders at a rate or a concurrency, measure
accept latency, throughput, errors by status and visibility latency (POST -> first GET 200)."""

from orderpipe_testkit.loadgen.generator import LoadConfig, run_load
from orderpipe_testkit.loadgen.stats import LoadReport, percentile

__all__ = ["LoadConfig", "LoadReport", "percentile", "run_load"]
