"""The load report as a PNG: throughput and latency over time, and the latency histogram."""

from __future__ import annotations

from pathlib import Path

from orderpipe_testkit.loadgen.stats import LoadReport


def plot_report(load: LoadReport, path: Path, *, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = load.as_dict()
    rows = report["per_second"]
    seconds = [row["second"] for row in rows]
    figure, (throughput, latency, histogram) = plt.subplots(3, 1, figsize=(10, 10), constrained_layout=True)
    config = report["config"]
    figure.suptitle(
        title
        or (
            f"orderpipe load: {report['orders_accepted']:,} orders accepted in {report['duration_s']:.0f} s "
            f"(batch {config['batch_size']}, profile {config['profile']})"
        )
    )

    throughput.plot(seconds, [row["orders_accepted"] for row in rows], color="tab:blue", label="accepted")
    errors = [row["errors"] for row in rows]
    if any(errors):
        throughput.plot(seconds, errors, color="tab:red", label="error responses")
    throughput.set_ylabel("orders / s")
    throughput.set_xlabel("time (s)")
    throughput.set_title("throughput")
    throughput.legend(loc="lower right")
    throughput.grid(alpha=0.3)

    latency.plot(seconds, [row["accept_p50_ms"] for row in rows], label="POST p50", color="tab:green")
    latency.plot(seconds, [row["accept_p99_ms"] for row in rows], label="POST p99", color="tab:orange")
    visible = [(v.posted_s, v.latency_s * 1000) for v in load.visibility if v.latency_s is not None]
    if visible:
        latency.scatter(
            [t for t, _ in visible],
            [ms for _, ms in visible],
            s=6,
            color="tab:purple",
            label="POST -> readable",
        )
    latency.set_yscale("log")
    latency.set_ylabel("ms (log)")
    latency.set_xlabel("time (s)")
    latency.set_title("latency over time")
    latency.legend(loc="upper right")
    latency.grid(alpha=0.3, which="both")

    accept_ms = [o.latency_s * 1000 for o in load.outcomes if o.status.startswith("2")]
    if accept_ms:
        histogram.hist(accept_ms, bins=60, color="tab:green", alpha=0.7, label="POST accept")
    if visible:
        histogram.hist(
            [ms for _, ms in visible], bins=60, color="tab:purple", alpha=0.6, label="POST -> readable"
        )
    histogram.set_xlabel("ms")
    histogram.set_ylabel("requests")
    histogram.set_title("latency histogram")
    histogram.legend(loc="upper right")
    histogram.grid(alpha=0.3)

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
