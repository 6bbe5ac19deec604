"""`orderpipe bench [NAME ...]`: run the benchmark suite (each benchmark with its baseline)."""

from __future__ import annotations

import argparse
from typing import Any

AUDIENCE = "developer"  # who this command is for (orderpipe_ops.cli groups --help by it)


def register(subparsers: Any) -> None:
    from benchmarks.registry import BENCHMARK_HELP  # light: names and one-line descriptions only

    parser = subparsers.add_parser(
        "bench",
        help="run the benchmark suite and write benchmarks/results/*.json and summary.md",
        description=(
            "Run all benchmarks (or the named ones), each against its baseline in the same run, on "
            "this machine: one Cassandra for all (CASSANDRA_CONTACT_POINTS, else a container, else "
            "the embedded node). Writes benchmarks/results/<benchmark>.json, prints a summary table "
            "and writes benchmarks/results/summary.md. Benchmarks:\n"
            + "\n".join(f"  {name}: {text}" for name, text in BENCHMARK_HELP.items())
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and shorter runs (a smoke test, not a result)"
    )
    parser.add_argument(
        "--cassandra-source",
        choices=["environment", "container", "embedded"],
        help="force where Cassandra comes from (default: the first that is available)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.suite import run_suite

    return run_suite(args.names, quick=args.quick, cassandra_source=args.cassandra_source)
