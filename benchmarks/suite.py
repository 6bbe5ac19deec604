"""`orderpipe bench`: run the benchmarks, write each result file, the summary table and summary.md."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.registry import BENCHMARK_HELP
from benchmarks.results_file import RESULTS_DIR, BenchmarkResult

NEEDS_CASSANDRA = {"writer", "reader_cache", "end_to_end"}


@contextmanager
def _cassandra(source: str | None, keyspace: str) -> Iterator[dict[str, str]]:
    from orderpipe_common.settings import from_mapping
    from orderpipe_devenv.cassandra.source import provide_cassandra
    from orderpipe_schema.handler import apply_schema
    from orderpipe_schema.settings import SchemaSettings

    with provide_cassandra(source) as provided:
        env = provided.endpoint.settings_env(keyspace)
        apply_schema(
            from_mapping(
                SchemaSettings,
                env,
                cassandra_replication={"class": "SimpleStrategy", "replication_factor": 1},
            )
        )
        yield env


def _runners(
    quick: bool, aws_backend: str | None, say: Callable[[str], None]
) -> dict[str, Callable[..., BenchmarkResult]]:
    def writer(cassandra_env: dict[str, str]) -> BenchmarkResult:
        from benchmarks import writer_throughput

        return writer_throughput.run(
            cassandra_env=cassandra_env, rows=1_000 if quick else 5_000, progress=say
        )

    def cold_init(cassandra_env: dict[str, str] | None) -> BenchmarkResult:
        from benchmarks import cold_init as module

        return module.run(rounds=3 if quick else 7, progress=say)

    def ingest_cpu(cassandra_env: dict[str, str] | None) -> BenchmarkResult:
        from benchmarks import ingest_cpu as module

        return module.run(orders=1_000 if quick else 4_000, rounds=3 if quick else 5, progress=say)

    def reader_cache(cassandra_env: dict[str, str]) -> BenchmarkResult:
        from benchmarks import reader_cache as module

        return module.run(
            cassandra_env=cassandra_env, orders=50 if quick else 100, rounds=2 if quick else 3, progress=say
        )

    def end_to_end(cassandra_env: dict[str, str]) -> BenchmarkResult:
        from benchmarks import end_to_end as module

        backends: tuple[Any, ...] = ("elasticmq", "moto")
        if aws_backend is not None:
            backends = (aws_backend,)
        return module.run(
            cassandra_env=cassandra_env,
            sqs_backends=backends,
            duration_s=10 if quick else 60,
            compare_duration_s=10 if quick else 30,
            progress=say,
            plot_path=RESULTS_DIR / "end_to_end.png",
        )

    return {
        "writer": writer,
        "cold_init": cold_init,
        "ingest_cpu": ingest_cpu,
        "reader_cache": reader_cache,
        "end_to_end": end_to_end,
    }


def summary_rows(results_dir: Path = RESULTS_DIR) -> list[list[str]]:
    """One row per goal of every result file present (so a partial run keeps the full table)."""
    rows = []
    for name in BENCHMARK_HELP:
        path = results_dir / f"{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        for ratio, goal in result["goals"].items():
            sign = ">=" if goal["direction"] == "at_least" else "<="
            rows.append(
                [
                    name,
                    ratio,
                    f"{goal['value']:.3g}",
                    f"{sign} {goal['target']:g}",
                    "met" if goal["met"] else "NOT met",
                    result["machine"]["date"][:10],
                ]
            )
    return rows


HEADERS = ["benchmark", "ratio", "value", "goal", "verdict", "date"]


def write_summary_md(results_dir: Path = RESULTS_DIR) -> Path:
    rows = summary_rows(results_dir)
    machine = {}
    for path in sorted(results_dir.glob("*.json")):
        machine = json.loads(path.read_text())["machine"]
        break
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        f"Machine: {machine.get('cores')} cores, {machine.get('processor')}, Python {machine.get('python')}, "
        f"{machine.get('platform')}. Details: `benchmarks/results/<benchmark>.json`, narrative: docs/benchmarks.md.",
    ]
    path = results_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_suite(
    names: Sequence[str],
    *,
    quick: bool = False,
    cassandra_source: str | None = None,
    aws_backend: str | None = None,
) -> int:
    console = Console(stderr=True)
    unknown = sorted(set(names) - set(BENCHMARK_HELP))
    if unknown:
        console.print(
            f"[red]unknown benchmark(s): {', '.join(unknown)}[/red]; known: {', '.join(BENCHMARK_HELP)}"
        )
        return 2
    selected = list(names) or list(BENCHMARK_HELP)
    runners = _runners(quick, aws_backend, lambda line: console.print(line, highlight=False, markup=False))
    failed: list[str] = []
    with ExitStack() as stack:
        cassandra_env: dict[str, str] | None = None
        if NEEDS_CASSANDRA & set(selected):
            with console.status("providing Cassandra and applying the schema"):
                cassandra_env = stack.enter_context(_cassandra(cassandra_source, "orderpipe_bench"))
        for name in selected:
            console.rule(name)
            try:
                result = runners[name](cassandra_env)
            except Exception:
                console.print_exception()
                failed.append(name)
                continue
            path = result.write()
            for line in result.summary_lines():
                console.print(line, highlight=False)
            console.print(f"wrote {path}")
    table = Table(title="benchmark summary")
    for header in HEADERS:
        table.add_column(header)
    for row in summary_rows():
        table.add_row(*row, style=None if row[4] == "met" else "red")
    Console().print(table)
    console.print(f"wrote {write_summary_md()}")
    if failed:
        console.print(f"[red]benchmarks that failed to run: {', '.join(failed)}[/red]")
        return 1
    return 0
