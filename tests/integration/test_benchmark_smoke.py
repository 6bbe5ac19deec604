"""Cheap smoke checks that the benchmarks still run (the measurements themselves are `make bench`)."""

from __future__ import annotations

import pytest

from benchmarks.writer_throughput import Target, measure_target
from orderpipe_devenv.toxiproxy import Toxic

pytestmark = pytest.mark.cassandra


def test_the_writer_benchmark_writes_every_variant_through_a_latency_proxy(
    cassandra_env, cassandra_endpoint, toxiproxy_client, orders_session
):
    # Given the session's node behind a Toxiproxy proxy, dialled through it by every driver session
    node = (cassandra_endpoint.contact_points[0], cassandra_endpoint.port)
    proxy = toxiproxy_client.create_proxy("bench-smoke", upstream=f"{node[0]}:{node[1]}")
    target = Target(
        "smoke", (proxy.host,), proxy.port, cassandra_endpoint.local_dc, (), {node: (proxy.host, proxy.port)}
    )
    # When the three variants write 200 orders each with 1 ms added to every answer
    results = measure_target(
        target,
        keyspace=cassandra_env["CASSANDRA_KEYSPACE"],
        consistency="LOCAL_QUORUM",
        rows=200,
        rounds=1,
        batch_size=100,
        toxics={"1ms": Toxic.latency(1)},
        proxies=[proxy],
        progress=lambda _: None,
    )
    # Then each variant reports a rate and its client CPU, and the driver saw the added latency
    at = results["1ms"]
    assert at["round_trip_ms"] >= 1.0
    for variant in ("writer", "raw", "per_record"):
        assert at[variant]["rows_per_s"] > 0 and at[variant]["client_cpu_us_per_row"] > 0
    assert orders_session.execute("SELECT count(*) FROM orders").one()[0] >= 200
