"""`orderpipe cassandra fetch|start|stop|status`: a real Cassandra node on this machine, by hand."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from orderpipe_devenv import cassandra as local_cassandra

AUDIENCE = "developer"  # who this command is for (orderpipe_ops.cli groups --help by it)
log = logging.getLogger(__name__)
console = Console()

_EXIT_NOT_RUNNING = 3  # as LSB `status` does: the service is not running


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "cassandra",
        help="fetch, start, stop and inspect a local Apache Cassandra node (no Docker)",
        description=(
            f"A real Apache Cassandra {local_cassandra.CASSANDRA_VERSION} on loopback, run with `java` from jars "
            f"resolved once from Maven Central into {local_cassandra.jar_dir().parent} (set ORDERPIPE_CACHE_DIR "
            "to move the cache). Node i listens on 127.0.0.i; its data center is "
            f"'{local_cassandra.LOCAL_DC}'."
        ),
    )
    commands = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)

    fetch = commands.add_parser(
        "fetch",
        help="download Cassandra's jars into the cache (once; silent when already there)",
        description=(
            f"Resolve org.apache.cassandra:cassandra-all:{local_cassandra.CASSANDRA_VERSION} and its runtime "
            "dependencies with Maven into the cache. Needs `mvn` and network the first time only; "
            "prints nothing when the cache is already complete."
        ),
    )
    fetch.set_defaults(handler=_fetch)

    start = commands.add_parser(
        "start",
        help="start N nodes and wait until CQL answers (in the background unless --foreground)",
        description=(
            "Start nodes one after another on 127.0.0.1..N and return once each answers CQL. By "
            "default the nodes keep running in the background after this command exits; "
            "`orderpipe cassandra stop` ends them. With --foreground they stop on Ctrl-C."
        ),
    )
    start.add_argument("--nodes", type=int, default=1, metavar="N", help="number of nodes, 1..9 (default 1)")
    start.add_argument(
        "--port",
        type=int,
        default=local_cassandra.DEFAULT_CQL_PORT,
        help=f"CQL port of every node (default {local_cassandra.DEFAULT_CQL_PORT})",
    )
    start.add_argument(
        "--storage-port",
        type=int,
        default=local_cassandra.DEFAULT_STORAGE_PORT,
        help=f"inter-node (gossip) port of every node (default {local_cassandra.DEFAULT_STORAGE_PORT})",
    )
    start.add_argument(
        "--jmx-port",
        type=int,
        default=local_cassandra.DEFAULT_JMX_PORT,
        help=f"JMX port of node 1 on 127.0.0.1; node i uses this + i - 1 (default {local_cassandra.DEFAULT_JMX_PORT})",
    )
    _add_base_dir(start)
    start.add_argument(
        "--foreground", action="store_true", help="stay attached; Ctrl-C (or SIGTERM) stops the nodes"
    )
    start.add_argument(
        "--keep-data",
        action="store_true",
        help="reuse the data already in --base-dir (same node count and ports) instead of starting empty",
    )
    start.add_argument(
        "--heap-mb", type=int, default=None, help="JVM heap per node (default 1024, 768 each for >1 node)"
    )
    start.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for each node (default 120)"
    )
    start.set_defaults(handler=_start)

    stop = commands.add_parser(
        "stop",
        help="stop the nodes a background `start` left running",
        description="SIGTERM each node (Cassandra flushes and exits), SIGKILL after --timeout seconds.",
    )
    _add_base_dir(stop)
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)")
    stop.set_defaults(handler=_stop)

    status = commands.add_parser(
        "status",
        help="show nodes, pids, addresses, memory and whether CQL answers",
        description="Exit code 0 when every node answers CQL, 1 when some do not, 3 when none is running.",
    )
    _add_base_dir(status)
    status.set_defaults(handler=_status)


def _add_base_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-dir",
        type=Path,
        default=local_cassandra.default_base_dir(),
        help="directory of the nodes' config, data, logs and state file (default: %(default)s)",
    )


# --------------------------------------------------------------------------------------------------


def _fetch(_args: argparse.Namespace) -> int:
    try:
        _ensure_jars()
    except local_cassandra.CassandraError as error:
        console.print(f"[red]fetch failed:[/red] {error}")
        return 1
    return 0


def _ensure_jars() -> None:
    """Fetch with a spinner showing what Maven downloads; nothing at all when already complete."""
    if local_cassandra.jars_ready():
        return
    with console.status(
        f"Resolving cassandra-all {local_cassandra.CASSANDRA_VERSION} and its runtime dependencies from Maven Central..."
    ) as status:
        # fetch_jars logs the outcome (jar count, size, time, place) when it has downloaded.
        local_cassandra.fetch_jars(progress=lambda message: status.update(f"Maven: {message}"))


def _start(args: argparse.Namespace) -> int:
    base_dir: Path = args.base_dir.expanduser().resolve()
    running = [node for node in local_cassandra.detached_status(base_dir) if node.running]
    if running:
        pids = ", ".join(str(node.pid) for node in running)
        console.print(
            f"[yellow]Cassandra is already running from {base_dir} (pids {pids}).[/yellow] "
            "Stop it first: orderpipe cassandra stop"
        )
        return 1
    try:
        _ensure_jars()
        settings = local_cassandra.ClusterSettings(
            nodes=args.nodes,
            cql_port=args.port,
            storage_port=args.storage_port,
            jmx_port=args.jmx_port,
            heap_mb=args.heap_mb,
        )
        settings.node_specs()  # validate the node count before touching the base dir
        cluster = local_cassandra.CassandraCluster(
            settings, base_dir=base_dir, keep_data=args.keep_data, die_with_parent=args.foreground
        )
        started = time.monotonic()
        with console.status(f"Starting {args.nodes} Cassandra node(s); each takes about 20 s..."):
            cluster.start(timeout_per_node=args.timeout)
    except (local_cassandra.CassandraError, ValueError) as error:
        console.print(f"[red]start failed:[/red] {error}")
        return 1
    console.print(f"[green]Cassandra is up[/green] ({time.monotonic() - started:.0f} s).")
    _print_status(local_cassandra.detached_status(base_dir))
    _print_connection_hint(cluster)
    if not args.foreground:
        cluster.detach()
        console.print("Running in the background. Stop it with: [bold]orderpipe cassandra stop[/bold]")
        return 0
    console.print("Press Ctrl-C to stop.")
    try:
        while all(node.is_running() for node in cluster.nodes):
            time.sleep(1)
        console.print("[red]A node exited on its own[/red]; see its log above. Stopping the rest.")
        return 1
    except (KeyboardInterrupt, SystemExit):
        console.print("Stopping...")
        return 0
    finally:
        cluster.stop()


def _print_connection_hint(cluster: local_cassandra.CassandraCluster) -> None:
    console.print(
        "Point tests and tools at it with:\n"
        f"  export CASSANDRA_CONTACT_POINTS={','.join(cluster.contact_points)} "
        f"CASSANDRA_PORT={cluster.port} CASSANDRA_LOCAL_DC={cluster.local_dc}"
    )


def _stop(args: argparse.Namespace) -> int:
    base_dir: Path = args.base_dir.expanduser().resolve()
    if local_cassandra.read_state(base_dir) is None:
        console.print(f"No Cassandra started from {base_dir} (no state file).")
        return 0
    stopped = local_cassandra.stop_detached(base_dir, timeout=args.timeout)
    if stopped:
        console.print(f"Stopped Cassandra (pids {', '.join(map(str, stopped))}).")
    else:
        console.print("Cassandra was not running any more (stale state file removed).")
    return 0


def _status(args: argparse.Namespace) -> int:
    base_dir: Path = args.base_dir.expanduser().resolve()
    statuses = local_cassandra.detached_status(base_dir)
    if not any(node.running for node in statuses):
        console.print(f"No Cassandra running from {base_dir}.")
        return _EXIT_NOT_RUNNING
    _print_status(statuses)
    return 0 if all(node.cql_answers for node in statuses) else 1


def _print_status(statuses: list[local_cassandra.NodeStatus]) -> None:
    table = Table(
        title=f"Cassandra {local_cassandra.CASSANDRA_VERSION}, data center {local_cassandra.LOCAL_DC}"
    )
    for column in ("node", "address", "pid", "running", "CQL answers", "RSS"):
        table.add_column(column, no_wrap=True)
    table.add_column("log", overflow="fold")
    for node in statuses:
        table.add_row(
            str(node.index),
            f"{node.address}:{node.cql_port}",
            str(node.pid or "-"),
            "yes" if node.running else "[red]no[/red]",
            "yes" if node.cql_answers else "[red]no[/red]",
            f"{node.rss_bytes / 2**20:.0f} MiB" if node.rss_bytes else "-",
            node.log,
        )
    console.print(table)
