"""A cheap smoke check that the step test's step runs against the local runtime (the measurement is
`make bench`): a two-second step at 10 single POSTs per second, judged and plotted."""

from __future__ import annotations

from pathlib import Path

from benchmarks.end_to_end import Pipeline, plot_curves, run_step
from orderpipe_devenv.runtime.pipeline import LocalRuntime


def test_a_step_is_judged_on_what_it_measured_and_plotted(
    local_runtime: LocalRuntime, tmp_path: Path
) -> None:
    # Given the e2e suite's local runtime
    pipe = Pipeline(local_runtime, cassandra_pids=())
    # When one short step offers 10 single POSTs per second
    step = run_step(pipe, rate=10, duration_s=2, batch_size=1, visibility_every_s=0.5, poll_s=0.1)
    # Then every order was accepted and the sampled ones became readable, and the verdict follows
    assert step["orders_accepted"] >= 15
    assert step["visibility_sampled"] >= 2 and step["visibility_never_visible"] == 0
    assert step["sustained"] == (step["kept_up"] and step["no_backlog_growth"] and step["p99_within_bound"])
    assert step["cpu_ms_per_order_by_part"]["function_workers"] > 0
    # And the curve of that step is drawn
    curve = {"batch_size": 1, "highest_sustained_orders_per_s": 10.0, "steps": [step]}
    assert plot_curves({"single": curve}, tmp_path / "steps.png").stat().st_size > 1000
