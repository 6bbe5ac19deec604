"""`orderpipe drill NAME`: failure drills on the real local parts, each printing its counts."""

from __future__ import annotations

import argparse
import json
from typing import Any

AUDIENCE = "developer"  # who this command is for (orderpipe_ops.cli groups --help by it)
DRILLS = {
    "outage": "Cassandra stopped and started under steady POSTs (20/s): every 202 becomes readable "
    "(retries, then a DLQ redrive with `orderpipe dlq redrive`'s code). Needs the embedded node.",
    "poison": "undecodable and schema-invalid messages mixed into batches: only they reach the DLQ",
    "duplicates": "every message delivered three times: one row per order, unchanged",
    "idempotency": "one Idempotency-Key sent 8 times at once and 4 times in a row: one order",
    "crash": "the writer's processes SIGKILLed mid-batch: redelivery completes it, no duplicates",
    "hostile": "schemathesis (>= 5,000 generated requests) and hand-written nasty input: no 5xx, "
    "no hang, each hand-written case a clear 4xx",
    "replication": "three nodes, RF 3, LOCAL_QUORUM; one node stopped under load (heavy: 3 JVMs)",
    "nemesis": "steady load while a seeded random schedule of network faults (Toxiproxy), writer "
    "and Cassandra-node kills hits; then: nothing lost or stored twice, no 5xx, no timeout "
    "(--minutes, --seed, --nodes 1|3, --report)",
    "rotation": "a secured node of its own (TLS, password auth; credentials in a Secrets Manager "
    "secret): under steady POSTs (25/s) the role's password is changed (ALTER ROLE, then "
    "put_secret_value) and the node restarted; every 202 reads back as posted, DLQ empty",
    "all": "every drill but replication, nemesis and rotation, the light ones sharing one runtime",
}
SHARED = ("outage", "poison", "duplicates", "idempotency", "hostile")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drill",
        help="failure drills: prove nothing acknowledged is lost (prints sent/accepted/readable/DLQ/lost)",
        description=(
            "Run a failure drill on the real local parts: a real Cassandra (CASSANDRA_CONTACT_POINTS, "
            "else the embedded node; replication always starts three embedded nodes), its own moto "
            "server, the real handlers behind the API Gateway and SQS event-source emulators. Each "
            "drill prints its counts: sent, accepted (202), readable, in the DLQ, lost (must be 0), "
            "and exits 1 when a promise did not hold.\n\n"
            + "\n".join(f"  {name:<12} {text}" for name, text in DRILLS.items())
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=list(DRILLS), help="which drill")
    parser.add_argument("--requests", type=int, default=5000, help="hostile: generated requests")
    parser.add_argument("--minutes", type=float, default=10.0, help="nemesis: minutes of load and faults")
    parser.add_argument("--seed", type=int, default=1, help="nemesis: seed of the fault schedule")
    parser.add_argument(
        "--nodes",
        type=int,
        choices=[1, 3],
        default=1,
        help="nemesis: Cassandra nodes (3: RF 3, started here)",
    )
    parser.add_argument("--rate", type=float, default=8.0, help="nemesis: POSTs per second")
    parser.add_argument(
        "--report", default="nemesis-report.json", help="nemesis: where to write the JSON report"
    )
    parser.add_argument("--json", action="store_true", help="print each report as a JSON line")
    parser.add_argument(
        "--cassandra-source",
        choices=["environment", "container", "embedded"],
        help="force where Cassandra comes from (outage needs embedded)",
    )
    parser.set_defaults(handler=run)


def _print(report: Any, as_json: bool) -> None:
    from rich.console import Console

    if as_json:
        print(json.dumps(report.as_dict(), default=str))
    else:
        Console().print(str(report), highlight=False, markup=False, soft_wrap=True)


def run(args: argparse.Namespace) -> int:
    import logging
    from contextlib import ExitStack

    from rich.console import Console

    from orderpipe_devenv.cassandra.source import CassandraUnavailableError, provide_cassandra
    from orderpipe_testkit.drills import hostile, scenarios
    from orderpipe_testkit.drills.common import ClusterOutage, DrillFailedError, drill_runtime

    console = Console(stderr=True)
    for noisy in ("orderpipe.gateway", "orderpipe.event_source", "httpx", "orderpipe.runtime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    reports: list[Any] = []
    try:
        if args.name == "nemesis":
            # A node killed on purpose makes the driver warn at every reconnect: the report says it all.
            logging.getLogger("cassandra").setLevel(logging.ERROR)
            return _nemesis(args, console)
        if args.name == "replication":
            from orderpipe_testkit.drills.replication import run_replication_drill

            with console.status("starting three Cassandra nodes, then the drill"):
                reports.append(run_replication_drill())
            _print(reports[-1], args.json)
            return 0
        if args.name == "rotation":
            return _rotation(args, console)
        names = (
            [n for n in DRILLS if n not in {"all", "replication", "nemesis", "rotation"}]
            if args.name == "all"
            else [args.name]
        )
        with ExitStack() as stack:
            try:
                cassandra = stack.enter_context(provide_cassandra(args.cassandra_source))
            except CassandraUnavailableError as error:
                console.print(f"[red]No Cassandra:[/red] {error}")
                return 2
            if "outage" in names and cassandra.embedded is None:
                console.print(
                    "[red]the outage drill stops the embedded node[/red]: use --cassandra-source embedded"
                )
                return 2
            shared = [n for n in names if n in SHARED]
            if shared:
                runtime = stack.enter_context(drill_runtime(cassandra.endpoint, name="cli"))
                for name in shared:
                    console.print(f"drill {name}: {DRILLS[name]}", highlight=False)
                    if name == "outage":
                        report = scenarios.cassandra_outage(runtime, ClusterOutage(cassandra.embedded))
                    elif name == "poison":
                        report = scenarios.poison_messages(runtime)
                    elif name == "duplicates":
                        report = scenarios.duplicate_delivery(runtime)
                    elif name == "idempotency":
                        report = scenarios.producer_retries(runtime)
                    else:
                        report = hostile.hostile_input(runtime, requests=args.requests)
                    reports.append(report)
                    _print(report, args.json)
            if "crash" in names:
                console.print(f"drill crash: {DRILLS['crash']}", highlight=False)
                reports.append(scenarios.writer_crash(cassandra.endpoint))
                _print(reports[-1], args.json)
    except DrillFailedError as failure:
        console.print(f"[red]drill failed:[/red] {failure}", highlight=False)
        return 1
    return 0


def _rotation(args: argparse.Namespace, console: Any) -> int:
    import logging

    from orderpipe_devenv.cassandra.source import CassandraUnavailableError, provide_cassandra
    from orderpipe_testkit.drills.rotation import credential_rotation

    if args.cassandra_source not in (None, "embedded"):
        console.print("[red]the rotation drill starts a secured embedded node[/red]: no --cassandra-source")
        return 2
    # The node restarts on purpose: the driver's reconnect warnings would drown the report.
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    try:
        console.print(f"drill rotation: {DRILLS['rotation']}", highlight=False)
        with provide_cassandra("embedded", secured=True) as secured:
            assert secured.embedded is not None, "a secured Cassandra is the embedded node"
            report = credential_rotation(secured.endpoint, secured.embedded)
    except CassandraUnavailableError as error:
        console.print(f"[red]No Cassandra:[/red] {error}")
        return 2
    _print(report, args.json)
    return 0


def _nemesis(args: argparse.Namespace, console: Any) -> int:
    from contextlib import ExitStack
    from pathlib import Path

    from orderpipe_devenv.cassandra.source import CassandraUnavailableError, provide_cassandra
    from orderpipe_testkit.drills.nemesis import run_nemesis

    with ExitStack() as stack:
        if args.nodes == 3:
            from orderpipe_devenv import cassandra as local_cassandra
            from orderpipe_devenv.cassandra.source import embedded_endpoint
            from orderpipe_testkit.drills.replication import REPLICATION, three_node_settings

            with console.status("starting three Cassandra nodes (about a minute)"):
                cluster: Any = stack.enter_context(local_cassandra.running_cluster(three_node_settings()))
            endpoint: Any = embedded_endpoint(cluster)
            replication: dict[str, str | int] | None = REPLICATION
        else:
            try:
                provided = stack.enter_context(provide_cassandra(args.cassandra_source))
            except CassandraUnavailableError as error:
                console.print(f"[red]No Cassandra:[/red] {error}")
                return 2
            endpoint, cluster, replication = provided.endpoint, provided.embedded, None
            if cluster is None:
                console.print("Cassandra is not the embedded node here: no node kills in the schedule")
        console.print(
            f"drill nemesis: {args.minutes:g} min, seed {args.seed}, {args.nodes} node(s): {DRILLS['nemesis']}",
            highlight=False,
        )
        report = run_nemesis(
            endpoint,
            contact_points=list(endpoint.contact_points),
            port=endpoint.port,
            cluster=cluster,
            minutes=args.minutes,
            seed=args.seed,
            rate=args.rate,
            replication=replication,
        )
    report.write_json(Path(args.report))
    _print(report, args.json)
    console.print(f"report: {args.report}", highlight=False)
    return 0 if report.passed else 1
