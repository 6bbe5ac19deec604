"""The live progress bar and the end-of-run summary (rich)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orderpipe_testkit.loadgen.generator import RATE_WINDOW_S, LoadConfig
from orderpipe_testkit.loadgen.stats import Snapshot


class LiveProgress:
    """A bar over the duration (or the count) with sent, accepted, errors and the current rate."""

    def __init__(self, console: Console, config: LoadConfig) -> None:
        self._by_count = config.duration_s is None
        self._total = float(config.count if self._by_count and config.count else config.duration_s or 1)
        self._progress = Progress(
            TextColumn("[bold]load[/bold]"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("load", total=self._total, line="starting")

    def update(self, snapshot: Snapshot) -> None:
        done = snapshot.orders_sent if self._by_count else min(snapshot.elapsed_s, self._total)
        rate = (
            f"{snapshot.current_orders_per_s:,.0f} orders/s (last {RATE_WINDOW_S:.0f} s)"
            if snapshot.sending
            else f"done: {snapshot.current_orders_per_s:,.0f} orders/s over the run"
        )
        line = (
            f"sent {snapshot.orders_sent:,}  accepted {snapshot.orders_accepted:,}  "
            f"errors {snapshot.errors:,}  {rate}"
        )
        if snapshot.visibility_pending:
            line += f"  polling {snapshot.visibility_pending}"
        self._progress.update(self._task, completed=done, line=line)

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="load summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    throughput = summary["throughput"]
    table.add_row("duration", f"{summary['duration_s']:.1f} s ({summary['stop_reason']})")
    table.add_row("requests (ok)", f"{summary['requests']:,} ({summary['requests_ok']:,})")
    table.add_row("orders accepted / sent", f"{summary['orders_accepted']:,} / {summary['orders_sent']:,}")
    table.add_row("throughput", f"{throughput['orders_accepted_per_s']:,.1f} orders/s")
    accept = summary["accept_latency"]
    if accept["count"]:
        table.add_row(
            "accept latency p50/p90/p99/max",
            f"{accept['p50_ms']:.1f} / {accept['p90_ms']:.1f} / {accept['p99_ms']:.1f} / {accept['max_ms']:.1f} ms",
        )
    table.add_row(
        "responses by status", ", ".join(f"{k}: {v:,}" for k, v in summary["status_counts"].items())
    )
    visibility = summary["visibility"]
    if visibility["sampled"]:
        latency = visibility["latency"]
        row = f"{visibility['visible']}/{visibility['sampled']} readable"
        if latency["count"]:
            row += (
                f"; p50/p90/p99/max {latency['p50_ms']:.0f} / {latency['p90_ms']:.0f} / "
                f"{latency['p99_ms']:.0f} / {latency['max_ms']:.0f} ms"
            )
        table.add_row("POST -> readable", row)
    lag = summary["config"]["schedule_lag"]
    if lag["late_requests"]:
        table.add_row(
            "late starts (generator behind)", f"{lag['late_requests']:,}, max {lag['max_ms']:.0f} ms"
        )
    console.print(table)
