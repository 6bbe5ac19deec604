"""Writer throughput over a network's latency, against two baselines in the same run.

Variants, each writing the same generated orders (upserts by order_id) after a warm-up, alternating
round by round so drift on a noisy machine hits each alike; the median round counts:
- writer: the real writer handler on SQS events of the configured batch size (sequential
  invocations: rows/s is what one writer invocation sustains);
- raw: `execute_concurrent_with_args`, same prepared statement and rows, same in-flight bound;
- per_record: one synchronous `session.execute` per row.

Networks: the real node through Toxiproxy, first without a toxic, then with a latency toxic on the
answers (0.5, 1, 2 ms added per round trip: a same-AZ to cross-AZ VPC range; 0.5 ms is Toxiproxy's
1 ms +- 1 ms jitter, as its toxics take whole milliseconds), each measured as the driver sees it (the
median of synchronous reads through the proxy minus direct). Then a 3-node cluster (127.0.0.1..3,
RF 3, LOCAL_QUORUM) behind one proxy per node at 1 ms. The driver reaches every node through its
proxy (an endpoint factory maps each node's address and port to its proxy's). Last, the node directly
on loopback, for what the proxy itself costs.

Per variant: rows/s, the client's CPU per row (this process: the handler or loop plus the driver's
event-loop thread) and the Cassandra JVMs' CPU per row (the server-side bound, from /proc), which
`docs/benchmarks.md` turns into a sizing table.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Cluster, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.connection import DefaultEndPoint, EndPointFactory

from benchmarks.common import BENCHMARK_COMMITLOG_SYNC, environment, spread_percent
from benchmarks.proc_cpu import cpu_seconds
from benchmarks.results_file import BenchmarkResult, Goal
from orderpipe_common import cassandra_session
from orderpipe_common.order_rows import INSERT_ORDER_CQL, order_to_row
from orderpipe_common.settings import CassandraSettings, PowertoolsSettings, load
from orderpipe_common.tuning import DEFAULT_TUNING
from orderpipe_devenv.lambda_events import LocalLambdaContext, sqs_event_from_bodies
from orderpipe_devenv.toxiproxy import Proxy, Toxic, ToxiproxyServer
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import make_orders, message_body
from orderpipe_writer.settings import WriterSettings

VARIANTS = ("writer", "raw", "per_record")
# Added round trip (ms) -> the toxic on the answers that gives it.
LATENCIES: dict[str, Toxic] = {
    "0.5ms": Toxic.latency(1, jitter_ms=1),
    "1ms": Toxic.latency(1),
    "2ms": Toxic.latency(2),
}
GOAL_LATENCY = "1ms"


@dataclass(frozen=True)
class Target:
    """A Cassandra to write to: contact points as the driver should dial them, and its JVMs."""

    name: str
    contact_points: tuple[str, ...]
    port: int
    local_dc: str
    server_pids: tuple[int, ...]
    # (node address, node port) -> (proxy address, proxy port): how the driver reaches each node.
    routes: dict[tuple[str, int], tuple[str, int]]


class ProxiedEndPoints(EndPointFactory):
    """Nodes found in system.peers are dialled through their proxies, not at their own address."""

    def __init__(self, routes: dict[tuple[str, int], tuple[str, int]], default_port: int) -> None:
        self.routes = routes
        self.default_port = default_port

    def create(self, row: dict[str, Any]) -> DefaultEndPoint:
        from cassandra.metadata import _NodeInfo

        address = _NodeInfo.get_broadcast_rpc_address(row)
        port = _NodeInfo.get_broadcast_rpc_port(row) or self.default_port
        proxied = self.routes.get((address, port), (address, port))
        return DefaultEndPoint(*proxied)


@contextlib.contextmanager
def clusters_through(target: Target) -> Iterator[None]:
    """Every Cluster the orderpipe code builds meanwhile (the writer's) dials nodes through `target`."""
    original = cassandra_session.build_cluster

    def build(settings: Any, credentials: Any = None) -> Cluster:
        cluster = original(settings, credentials)
        cluster.endpoint_factory = ProxiedEndPoints(target.routes, target.port).configure(cluster)
        return cluster

    cassandra_session.build_cluster = build
    try:
        yield
    finally:
        cassandra_session.build_cluster = original


@contextlib.contextmanager
def logs_discarded() -> Iterator[None]:
    from orderpipe_common.observability import logger

    handler = logger.registered_handler
    level = logger.log_level
    logger.setLevel("INFO")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # and the metrics (EMF)
        previous = handler.setStream(devnull)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            handler.setStream(previous)  # type: ignore[attr-defined]
            logger.setLevel(level)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _settings_env(target: Target, keyspace: str, consistency: str) -> dict[str, str]:
    return WriterSettings.environment(
        cassandra_contact_points=list(target.contact_points),
        cassandra_port=target.port,
        cassandra_local_dc=target.local_dc,
        cassandra_keyspace=keyspace,
        cassandra_write_consistency=consistency,
    )


def measured_round_trip_ms(session: Session, count: int = 200) -> float:
    """Median of synchronous single-row reads (what one driver round trip costs)."""
    statement = session.prepare("SELECT release_version FROM system.local WHERE key = 'local'")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        session.execute(statement)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure_target(
    target: Target,
    *,
    keyspace: str,
    consistency: str,
    rows: int,
    rounds: int,
    batch_size: int,
    toxics: dict[str, Toxic | None],
    proxies: Sequence[Proxy],
    progress: Callable[[str], None],
    jvm_warm_up_rounds: int = 0,
) -> dict[str, Any]:
    """Every variant at every latency on one target: rows/s, client and server CPU per row."""
    from orderpipe_writer import handler  # imported after the environment is set

    results: dict[str, Any] = {}
    with (
        contextlib.ExitStack() as stack,
        environment(
            {
                **_settings_env(target, keyspace, consistency),
                **PowertoolsSettings.environment(
                    powertools_metrics_disabled=True, powertools_log_level="WARNING"
                ),
            }
        ),
        clusters_through(target),
    ):
        reset_process_state()
        settings = load(WriterSettings)
        orders = make_orders(rows)
        # The writer logs at INFO as deployed (a line per stored order is part of its cost per row);
        # the lines are formatted as in Lambda, then dropped instead of flooding the terminal.
        stack.enter_context(logs_discarded())
        events = [
            sqs_event_from_bodies(message_body(o) for o in batch) for batch in _chunks(orders, batch_size)
        ]
        row_batches = [[order_to_row(o) for o in batch] for batch in _chunks(orders, batch_size)]
        cluster = cassandra_session.build_cluster(settings)
        session = cluster.connect(keyspace)
        insert = session.prepare(INSERT_ORDER_CQL)
        insert.consistency_level = cassandra_session.consistency(consistency)
        insert.is_idempotent = True
        context = LocalLambdaContext(function_name="writer-benchmark", timeout_seconds=900)

        def writer(batches: range) -> None:
            for index in batches:
                response = handler.lambda_handler(events[index], context)
                if response["batchItemFailures"]:
                    raise RuntimeError(f"writer reported failures: {response['batchItemFailures'][:3]}")

        def raw(batches: range) -> None:
            for index in batches:
                for ok, outcome in execute_concurrent_with_args(
                    session,
                    insert,
                    row_batches[index],
                    concurrency=settings.writer_max_in_flight,
                    raise_on_first_error=True,
                ):
                    assert ok, outcome

        def per_record(batches: range) -> None:
            for index in batches:
                for row in row_batches[index]:
                    session.execute(insert, row)

        variants: dict[str, Callable[[range], None]] = {
            "writer": writer,
            "raw": raw,
            "per_record": per_record,
        }
        all_batches = range(len(events))
        warm_up = range(max(1, min(len(events), 500 // batch_size)))
        if jvm_warm_up_rounds:  # a fresh JVM compiles its hot paths during the first tens of seconds
            progress(f"warming up {target.name} ({jvm_warm_up_rounds} x {rows} rows)")
            for _ in range(jvm_warm_up_rounds):
                raw(all_batches)
        for latency, toxic in toxics.items():
            with contextlib.ExitStack() as stack:
                if toxic is not None:
                    for proxy in proxies:
                        stack.enter_context(proxy.toxic(toxic))
                rtt = measured_round_trip_ms(session)
                for variant in variants.values():
                    variant(warm_up)
                samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
                for number in range(rounds):
                    names = list(variants) if number % 2 == 0 else list(reversed(variants))
                    for name in names:
                        client_before, server_before = time.process_time(), cpu_seconds(target.server_pids)
                        started = time.perf_counter()
                        variants[name](all_batches)
                        elapsed = time.perf_counter() - started
                        client = (time.process_time() - client_before) / rows * 1e6
                        server = (cpu_seconds(target.server_pids) - server_before) / rows * 1e6
                        samples[name].append((rows / elapsed, client, server))
                        progress(
                            f"{target.name} {latency} round {number + 1}/{rounds} {name}: {rows / elapsed:,.0f} "
                            f"rows/s, client {client:.0f} us/row, cassandra {server:.0f} us/row"
                        )
            results[latency] = {
                "round_trip_ms": round(rtt, 3),
                **{name: _summary(values) for name, values in samples.items()},
            }
        cluster.shutdown()
        reset_process_state()
    return results


def _summary(samples: list[tuple[float, float, float]]) -> dict[str, Any]:
    rates = [s[0] for s in samples]
    return {
        "rows_per_s": round(statistics.median(rates)),
        "client_cpu_us_per_row": round(statistics.median(s[1] for s in samples), 1),
        "cassandra_cpu_us_per_row": round(statistics.median(s[2] for s in samples), 1),
        "samples_rows_per_s": [round(r) for r in rates],
        "spread_percent": spread_percent(rates),
    }


def _proxies_for(
    toxiproxy: ToxiproxyServer, name: str, nodes: Sequence[tuple[str, int]], listen_host: Callable[[int], str]
) -> list[Proxy]:
    from orderpipe_devenv.processes import free_port

    port = free_port()
    return [
        toxiproxy.client.create_proxy(
            f"{name}-{index}", upstream=f"{address}:{node_port}", listen=f"{listen_host(index)}:{port}"
        )
        for index, (address, node_port) in enumerate(nodes, start=1)
    ]


def run(
    *,
    cassandra_env: dict[str, str],
    server_pids: Sequence[int] = (),
    rows: int = 2_000,
    rounds: int = 3,
    batch_size: int = DEFAULT_TUNING.writer_batch_size,
    cluster_nodes: int = 3,
    progress: Callable[[str], None] = print,
) -> BenchmarkResult:
    given = CassandraSettings.from_environment(cassandra_env)
    keyspace = given["cassandra_keyspace"]
    node = (given["cassandra_contact_points"].split(",")[0], int(given["cassandra_port"]))
    local_dc = given["cassandra_local_dc"]
    common = {"rows": rows, "rounds": rounds, "batch_size": batch_size, "progress": progress}
    figures: dict[str, Any] = {
        "rows_per_round": rows,
        "rounds": rounds,
        "batch_size": batch_size,
        "max_in_flight": WriterSettings.default("writer_max_in_flight"),
        # The nodes the suite started (it gave their pids) run BENCHMARK_COMMITLOG_SYNC, which says why.
        "commitlog_sync": {
            "single_node": BENCHMARK_COMMITLOG_SYNC if server_pids else "the cluster's own",
            "cluster": BENCHMARK_COMMITLOG_SYNC,
        },
    }
    with ToxiproxyServer() as toxiproxy:
        proxies = _proxies_for(toxiproxy, "single", [node], lambda _: node[0])
        single = Target(
            name="1 node RF 1",
            contact_points=(proxies[0].host,),
            port=proxies[0].port,
            local_dc=local_dc,
            server_pids=tuple(server_pids),
            routes={node: (proxies[0].host, proxies[0].port)},
        )
        direct = Target("1 node RF 1 direct", (node[0],), node[1], local_dc, tuple(server_pids), {})
        # Through the proxy first, with no toxic ("proxy") and then each latency: the added round trip
        # is measured against the proxy alone, minutes apart at most. The JVM is warmed up first
        # (a fresh node compiles its hot paths during the first tens of seconds of writes).
        through_proxy = measure_target(
            single,
            keyspace=keyspace,
            consistency="LOCAL_QUORUM",
            toxics={"proxy": None, **LATENCIES},
            proxies=proxies,
            jvm_warm_up_rounds=3,
            **common,  # type: ignore[arg-type]
        )
        # Loopback without the proxy last, for reference (what the proxy itself costs).
        figures["single_node"] = {
            **measure_target(
                direct,
                keyspace=keyspace,
                consistency="LOCAL_QUORUM",
                toxics={"direct": None},
                proxies=[],
                **common,  # type: ignore[arg-type]
            ),
            **through_proxy,
        }
        proxy_rtt = figures["single_node"]["proxy"]["round_trip_ms"]
        for latency in LATENCIES:
            at = figures["single_node"][latency]
            at["added_round_trip_ms"] = round(at["round_trip_ms"] - proxy_rtt, 3)
        if cluster_nodes > 1:
            figures[f"cluster_{cluster_nodes}_nodes_rf3"] = _cluster_figures(
                toxiproxy, nodes=cluster_nodes, common=common, progress=progress
            )
    return _result(figures, cluster_nodes)


def _cluster_figures(
    toxiproxy: ToxiproxyServer, *, nodes: int, common: dict[str, Any], progress: Callable[[str], None]
) -> dict[str, Any]:
    from orderpipe_common.settings import from_mapping
    from orderpipe_devenv import cassandra as local_cassandra
    from orderpipe_devenv.processes import free_port
    from orderpipe_schema.handler import apply_schema
    from orderpipe_schema.settings import SchemaSettings

    settings = local_cassandra.ClusterSettings(
        nodes=nodes,
        cql_port=free_port(),
        storage_port=free_port(),
        jmx_port=free_port(),
        heap_mb=512,
        commitlog_sync=BENCHMARK_COMMITLOG_SYNC,
    )
    progress(f"starting a {nodes}-node cluster (RF {min(3, nodes)})")
    started = time.monotonic()
    with local_cassandra.running_cluster(settings) as cluster:
        progress(f"cluster up in {time.monotonic() - started:.0f} s")
        node_addresses = [(address, cluster.port) for address in cluster.contact_points]
        # Proxy i listens on 127.0.1.i, beside node i on 127.0.0.i, all on one port (the driver's).
        proxies = _proxies_for(toxiproxy, "cluster", node_addresses, lambda index: f"127.0.1.{index}")
        target = Target(
            name=f"{nodes} nodes RF 3",
            contact_points=(proxies[0].host,),
            port=proxies[0].port,
            local_dc=cluster.local_dc,
            server_pids=tuple(n.pid for n in cluster.nodes if n.pid is not None),
            routes={n: (p.host, p.port) for n, p in zip(node_addresses, proxies, strict=True)},
        )
        keyspace = "orderpipe_bench_rf3"
        apply_schema(
            from_mapping(
                SchemaSettings,
                _settings_env(
                    Target("direct", tuple(cluster.contact_points), cluster.port, cluster.local_dc, (), {}),
                    keyspace,
                    "LOCAL_QUORUM",
                ),
                cassandra_replication={"class": "NetworkTopologyStrategy", cluster.local_dc: min(3, nodes)},
            )
        )
        return measure_target(
            target,
            keyspace=keyspace,
            consistency="LOCAL_QUORUM",
            toxics={GOAL_LATENCY: LATENCIES[GOAL_LATENCY]},
            proxies=proxies,
            jvm_warm_up_rounds=3,
            **common,
        )


def _result(figures: dict[str, Any], cluster_nodes: int) -> BenchmarkResult:
    single = figures["single_node"]
    ratios: dict[str, float] = {}
    goals: list[Goal] = []
    for latency in LATENCIES:
        at = single[latency]
        ratios[f"writer_vs_raw_{latency}"] = at["writer"]["rows_per_s"] / at["raw"]["rows_per_s"]
        goals.append(Goal(f"writer_vs_raw_{latency}", 0.95))
    at_goal = single[GOAL_LATENCY]
    ratios[f"writer_vs_per_record_{GOAL_LATENCY}"] = (
        at_goal["writer"]["rows_per_s"] / at_goal["per_record"]["rows_per_s"]
    )
    goals.append(Goal(f"writer_vs_per_record_{GOAL_LATENCY}", 5.0))
    # The writer's own Python per order (envelope parse, row mapping, its log line) on top of the driver.
    client_ratios = [
        single[latency]["writer"]["client_cpu_us_per_row"] / single[latency]["raw"]["client_cpu_us_per_row"]
        for latency in ("direct", "proxy", *LATENCIES)
    ]
    ratios["writer_client_cpu_vs_raw"] = statistics.median(client_ratios)
    goals.append(Goal("writer_client_cpu_vs_raw", 1.3, "at_most"))
    cluster_key = f"cluster_{cluster_nodes}_nodes_rf3"
    if cluster_key in figures:
        at = figures[cluster_key][GOAL_LATENCY]
        ratios[f"cluster_writer_vs_raw_{GOAL_LATENCY}"] = at["writer"]["rows_per_s"] / at["raw"]["rows_per_s"]
        ratios[f"cluster_writer_vs_per_record_{GOAL_LATENCY}"] = (
            at["writer"]["rows_per_s"] / at["per_record"]["rows_per_s"]
        )
        goals.append(Goal(f"cluster_writer_vs_raw_{GOAL_LATENCY}", 0.95))
    return BenchmarkResult(
        benchmark="writer",
        figures=figures,
        ratios=ratios,
        goals=goals,
        notes=[
            "Client, Toxiproxy and every Cassandra JVM share this machine's cores: rows/s are bounded by "
            "CPU here far more than on a real cluster; CPU per row (client, server) is the portable figure.",
            "Latency: Toxiproxy latency toxic on the answers of every node's proxy; round_trip_ms is the "
            "median synchronous read as the driver sees it, added_round_trip_ms that minus the proxy's "
            "without a toxic ('proxy'). 'direct' is loopback without the proxy, measured last.",
            "writer_client_cpu_vs_raw: median over the latencies of the writer's client CPU per row "
            "over the raw driver loop's (same rows, same in-flight bound).",
        ],
    )
