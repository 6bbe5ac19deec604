"""Drill 5: replication. Three local nodes (127.0.0.1-3), keyspace RF 3, LOCAL_QUORUM; one node is
stopped under load: writes and reads go on, nothing is lost; it is started again.

Heavy (three JVMs, ~2.5 GB of heap, a few minutes on 2 cores): `orderpipe drill replication`, and
`pytest -m heavy tests/drills` (deselected from the default run).
"""

from __future__ import annotations

import time

from orderpipe_devenv import cassandra as local_cassandra
from orderpipe_devenv.cassandra.source import embedded_endpoint
from orderpipe_devenv.processes import find_java, stable_port
from orderpipe_ops.queues import dlq_depth, redrive
from orderpipe_testkit.drills.common import (
    ClusterOutage,
    DrillReport,
    SteadyLoad,
    account,
    check,
    drill_runtime,
    queues_of,
    readable_ids,
    stored_rows,
    wait_drained,
    wait_readable,
    wait_until,
)

REPLICATION: dict[str, str | int] = {"class": "NetworkTopologyStrategy", local_cassandra.LOCAL_DC: 3}


def three_node_settings() -> local_cassandra.ClusterSettings:
    # Ports a node killed and started again finds free (node i's JMX listens on jmx_port + i - 1).
    return local_cassandra.ClusterSettings(
        nodes=3, cql_port=stable_port(), storage_port=stable_port(), jmx_port=stable_port(count=3)
    )


def replication(
    cluster: local_cassandra.CassandraCluster,
    *,
    node_to_stop: int = 3,
    rate_per_second: float = 20,
    before_seconds: float = 5,
    down_seconds: float = 15,
    after_seconds: float = 5,
) -> DrillReport:
    """Run the drill on a started 3-node `cluster` (LOCAL_QUORUM = 2 of 3 replicas)."""
    report = DrillReport("replication")
    started = time.monotonic()
    endpoint = embedded_endpoint(cluster)
    outage = ClusterOutage(cluster, [node_to_stop])
    max_requests = int(rate_per_second * (before_seconds + down_seconds + after_seconds + 120))
    with drill_runtime(endpoint, name="replication", replication=REPLICATION) as runtime:
        assert runtime.event_source is not None
        with SteadyLoad(runtime, rate_per_second=rate_per_second, max_requests=max_requests) as load:
            time.sleep(before_seconds)
            written_before = list(load.accepted_ids)
            # Stored (checked with CQL, not GET: the reads below must be cache misses).
            wait_until(
                lambda: len(stored_rows(runtime, written_before)) == len(written_before),
                timeout=30,
                what="the orders accepted so far to be stored",
            )
            failed_before = runtime.event_source.stats.failed
            outage.stop()
            stop_at = time.monotonic()
            # Reads of orders never read before (cache misses: Cassandra at LOCAL_QUORUM, 2 of 3 up).
            readable_while_down = readable_ids(runtime, written_before)
            time.sleep(max(0.0, down_seconds - (time.monotonic() - stop_at)))
            accepted_while_down = load.accepted_ids[len(written_before) :]
            # Written while the node is down: readable (within 15 s) before it is started again.
            stored_while_down = wait_readable(runtime, accepted_while_down, timeout=15)
            failed_while_down = runtime.event_source.stats.failed - failed_before
            outage.start()
            time.sleep(after_seconds)
        report.sent, report.accepted = load.sent, len(load.accepted_ids)
        report.details["answers"] = dict(sorted(load.statuses.items()))
        report.details["node stopped"] = f"127.0.0.{node_to_stop} for {down_seconds:.0f} s, then started"
        report.details["reads while down"] = (
            f"{len(readable_while_down)} of {len(written_before)} answered 200"
        )
        report.details["writes while down"] = (
            f"{len(accepted_while_down)} accepted, {len(stored_while_down)} readable before the node came back"
        )
        report.details["writer records failed while down"] = failed_while_down
        wait_drained(runtime, timeout=90)
        if dlq_depth(runtime.client("sqs"), queues_of(runtime).dlq_url):
            report.details["redriven"] = redrive(runtime.client("sqs"), queues_of(runtime)).moved
            wait_drained(runtime, timeout=60)
        account(report, runtime, load.accepted_ids, timeout=30)
    report.seconds = time.monotonic() - started
    check(set(load.statuses) == {202}, f"POSTs got other answers than 202: {load.statuses}")
    check(len(readable_while_down) == len(written_before), "reads failed while one node was down")
    check(
        len(stored_while_down) == len(accepted_while_down) > 0,
        "writes did not go on while one node was down",
    )
    check(report.lost == 0, f"{report.lost} accepted orders lost")
    return report


def run_replication_drill(**options: float) -> DrillReport:
    """Start three nodes, run the drill, stop them (always)."""
    find_java()
    local_cassandra.fetch_jars()
    with local_cassandra.CassandraCluster(three_node_settings()) as cluster:
        return replication(cluster, **options)  # type: ignore[arg-type]
