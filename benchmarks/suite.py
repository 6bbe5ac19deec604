"""`orderpipe bench`: run the benchmarks, write each result file, the summary table and summary.md."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.common import BENCHMARK_COMMITLOG_SYNC
from benchmarks.registry import BENCHMARK_HELP
from benchmarks.results_file import RESULTS_DIR, BenchmarkResult

NEEDS_CASSANDRA = {"writer", "reader_cache", "end_to_end"}


@dataclass(frozen=True)
class BenchCassandra:
    env: dict[str, str]  # CassandraSettings' environment for the benchmark keyspace
    pids: tuple[int, ...]  # the JVMs, when the suite started them (their CPU is measured)


@contextmanager
def _cassandra(source: str | None, keyspace: str) -> Iterator[BenchCassandra]:
    from orderpipe_common.settings import from_mapping
    from orderpipe_devenv.cassandra.source import free_port_cluster_settings, provide_cassandra
    from orderpipe_schema.handler import apply_schema
    from orderpipe_schema.settings import SchemaSettings

    embedded_settings = dataclasses.replace(
        free_port_cluster_settings(), commitlog_sync=BENCHMARK_COMMITLOG_SYNC
    )
    with provide_cassandra(source, embedded_settings=embedded_settings) as provided:
        env = provided.endpoint.settings_env(keyspace)
        apply_schema(
            from_mapping(
                SchemaSettings,
                env,
                cassandra_replication={"class": "SimpleStrategy", "replication_factor": 1},
            )
        )
        nodes = provided.embedded.nodes if provided.embedded is not None else []
        yield BenchCassandra(env, tuple(node.pid for node in nodes if node.pid is not None))


def _runners(quick: bool, say: Callable[[str], None]) -> dict[str, Callable[..., BenchmarkResult]]:
    def writer(cassandra: BenchCassandra) -> BenchmarkResult:
        from benchmarks import writer_throughput

        return writer_throughput.run(
            cassandra_env=cassandra.env,
            server_pids=cassandra.pids,
            rows=500 if quick else 2_000,
            rounds=1 if quick else 3,
            cluster_nodes=1 if quick else 3,  # the 3-node cluster takes minutes to start: not in --quick
            progress=say,
        )

    def cold_init(cassandra: BenchCassandra | None) -> BenchmarkResult:
        from benchmarks import cold_init as module

        return module.run(rounds=3 if quick else 7, progress=say)

    def ingest_cpu(cassandra: BenchCassandra | None) -> BenchmarkResult:
        from benchmarks import ingest_cpu as module

        return module.run(orders=1_000 if quick else 4_000, rounds=3 if quick else 5, progress=say)

    def reader_cache(cassandra: BenchCassandra) -> BenchmarkResult:
        from benchmarks import reader_cache as module

        return module.run(
            cassandra_env=cassandra.env, orders=50 if quick else 100, rounds=2 if quick else 3, progress=say
        )

    def end_to_end(cassandra: BenchCassandra) -> BenchmarkResult:
        from benchmarks import end_to_end as module

        plans: Sequence[module.StepPlan] = module.DEFAULT_PLANS
        if quick:
            plans = tuple(module.StepPlan(p.mode, p.rates[:2], p.batch_size) for p in plans)
        return module.run(
            cassandra_env=cassandra.env,
            cassandra_pids=cassandra.pids,
            plans=plans,
            step_duration_s=5 if quick else 20,
            latency_duration_s=5 if quick else 20,
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
                    result["machine"]["date"][:16].replace("T", " "),
                    # Other work on the machine during the run (1-minute load average; cores beside it).
                    f"{(result['machine'].get('load_average') or ['?'])[0]}",
                ]
            )
    return rows


HEADERS = ["benchmark", "ratio", "value", "goal", "verdict", "date (UTC)", "load avg"]


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
        f"{machine.get('platform')}. Load avg: the 1-minute load average when the result was written (other "
        "work on the same cores; above the core count, absolute figures are low and ratios noisy). "
        "Details: `benchmarks/results/<benchmark>.json`, narrative: docs/benchmarks.md.",
    ]
    path = results_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_suite(
    names: Sequence[str],
    *,
    quick: bool = False,
    cassandra_source: str | None = None,
) -> int:
    console = Console(stderr=True)
    unknown = sorted(set(names) - set(BENCHMARK_HELP))
    if unknown:
        console.print(
            f"[red]unknown benchmark(s): {', '.join(unknown)}[/red]; known: {', '.join(BENCHMARK_HELP)}"
        )
        return 2
    selected = list(names) or list(BENCHMARK_HELP)
    runners = _runners(quick, lambda line: console.print(line, highlight=False, markup=False))
    failed: list[str] = []
    with ExitStack() as stack:
        cassandra: BenchCassandra | None = None
        if NEEDS_CASSANDRA & set(selected):
            with console.status("providing Cassandra and applying the schema"):
                cassandra = stack.enter_context(_cassandra(cassandra_source, "orderpipe_bench"))
        for name in selected:
            console.rule(name)
            try:
                result = runners[name](cassandra)
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
