"""`orderpipe fault add|remove|list|clear`: inject network faults into `orderpipe run --faults` by hand."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

AUDIENCE = "developer"  # who this command is for (orderpipe_ops.cli groups --help by it)
TARGETS = "cassandra (every node; cassandra-N one node), sqs or dynamodb"


def register(subparsers: Any) -> None:
    from orderpipe_devenv.runtime.faults import FAULTS

    kinds = "\n".join(
        f"  {kind.name:<11} {kind.description}"
        + (f" (SIZE in {kind.unit}, default {kind.default_size})" if kind.unit else "")
        for kind in FAULTS.values()
    )
    group = subparsers.add_parser(
        "fault",
        help="inject network faults between the local functions and Cassandra/SQS/DynamoDB (run --faults)",
        description=(
            "Inject network faults by hand into a running `orderpipe run --faults`, whose functions reach "
            "Cassandra, SQS and DynamoDB through Toxiproxy. The Toxiproxy is found by itself (the run "
            "command says where it is), or give --toxiproxy URL or ORDERPIPE_TOXIPROXY_URL.\n\n"
            f"Faults:\n{kinds}\n\n"
            "Examples:\n"
            "  orderpipe fault add cassandra black-hole      # GET an uncached order: 503 within 3 s\n"
            "  orderpipe fault add sqs latency --size 800    # POSTs still 202, slower\n"
            "  orderpipe fault add dynamodb reset --for 20   # for 20 s, then removed\n"
            "  orderpipe fault list\n"
            "  orderpipe fault clear"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group.add_argument(
        "--toxiproxy", metavar="URL", help="Toxiproxy's API (default: the running run --faults)"
    )
    commands = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)

    add = commands.add_parser("add", help="put a fault on a dependency", description=f"Targets: {TARGETS}.")
    add.add_argument("target", help=TARGETS)
    add.add_argument("fault", choices=list(FAULTS), help="what goes wrong")
    add.add_argument("--size", type=int, help="ms for latency, KB/s for bandwidth, bytes for limit-data")
    add.add_argument("--for", dest="seconds", type=float, help="remove it again after this many seconds")
    add.set_defaults(handler=_add)

    remove = commands.add_parser("remove", help="remove every fault of a dependency")
    remove.add_argument("target", help=TARGETS)
    remove.set_defaults(handler=_remove)

    listing = commands.add_parser("list", help="the proxies, where they lead and their faults")
    listing.set_defaults(handler=_list)

    clear = commands.add_parser("clear", help="remove every fault of every dependency")
    clear.set_defaults(handler=_clear)


def _client(args: argparse.Namespace) -> Any:
    from orderpipe_devenv.toxiproxy import ToxiproxyClient
    from orderpipe_ops import local_pipeline

    url = args.toxiproxy or os.environ.get("ORDERPIPE_TOXIPROXY_URL")
    if not url:
        pipeline = local_pipeline.read()  # what the running `orderpipe run` wrote
        url = pipeline.toxiproxy_url if pipeline is not None else None
    if not url:
        raise SystemExit("no Toxiproxy found: start `orderpipe run --faults`, or give --toxiproxy URL")
    return ToxiproxyClient(url)


def _proxies(client: Any, target: str) -> list[Any]:
    from orderpipe_devenv.runtime.faults import select_proxies

    try:
        return select_proxies(list(client.proxies().values()), target)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def _add(args: argparse.Namespace) -> int:
    from orderpipe_devenv.runtime.faults import FAULTS, heal, inject

    client = _client(args)
    proxies = _proxies(client, args.target)
    inject(proxies, args.fault, args.size)
    kind = FAULTS[args.fault]
    size = str(args.size if args.size is not None else kind.default_size)
    names = ", ".join(p.name for p in proxies)
    print(f"{args.fault} on {names}: {kind.description.replace('SIZE', size)}")
    if args.seconds is None:
        print(f"remove it with: orderpipe fault remove {args.target}")
        return 0
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        heal(proxies)
    print(f"removed from {names}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from orderpipe_devenv.runtime.faults import heal

    proxies = _proxies(_client(args), args.target)
    heal(proxies)
    print(f"no fault on {', '.join(p.name for p in proxies)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    client = _client(args)
    table = Table(title=f"Toxiproxy {client.api_url}", title_justify="left")
    for column in ("proxy", "listens", "leads to", "state", "faults"):
        table.add_column(column)
    for proxy in sorted(client.proxies().values(), key=lambda p: p.name):
        toxics = ", ".join(f"{t.type} {t.stream} {t.attributes}" for t in proxy.toxics()) or "-"
        table.add_row(proxy.name, proxy.listen, proxy.upstream, "up" if proxy.enabled else "DOWN", toxics)
    Console().print(table)
    return 0


def _clear(args: argparse.Namespace) -> int:
    _client(args).reset()
    print("every fault removed")
    return 0
