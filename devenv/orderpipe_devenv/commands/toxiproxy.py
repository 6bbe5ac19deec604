"""`orderpipe toxiproxy fetch`: build Toxiproxy's server once into the cache (make setup runs it)."""

from __future__ import annotations

import argparse
from typing import Any

AUDIENCE = "developer"  # who this command is for (orderpipe_ops.cli groups --help by it)


def register(subparsers: Any) -> None:
    from orderpipe_devenv import toxiproxy

    group = subparsers.add_parser(
        "toxiproxy",
        help="the fault-injection proxy the fault tests and drills put in front of dependencies",
        description=(
            f"Toxiproxy {toxiproxy.TOXIPROXY_VERSION} (Shopify's TCP proxy that injects latency, "
            "black holes, resets, bandwidth limits) as used by the fault-injection tests and drills."
        ),
    )
    commands = group.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)
    fetch = commands.add_parser(
        "fetch",
        help="build toxiproxy-server into the cache (once; silent when already there)",
        description=(
            f"`go install {toxiproxy.TOXIPROXY_MODULE}/cmd/server@v{toxiproxy.TOXIPROXY_VERSION}` into "
            f"{toxiproxy.binary_path().parent} (set ORDERPIPE_CACHE_DIR to move the cache). Needs Go and "
            "the Go module proxy the first time only (about a minute); prints nothing when the binary "
            "is already there. Exit code 1 when it cannot be built."
        ),
    )
    fetch.set_defaults(handler=_fetch)


def _fetch(_args: argparse.Namespace) -> int:
    from rich.console import Console

    from orderpipe_devenv import toxiproxy

    console = Console(stderr=True)
    if toxiproxy.binary_ready():
        return 0
    try:
        with console.status(
            f"Building toxiproxy-server {toxiproxy.TOXIPROXY_VERSION} with `go install` (once, about a minute)..."
        ):
            toxiproxy.fetch_binary()  # logs where it put the binary and how long it took
    except toxiproxy.ToxiproxyUnavailableError as error:
        console.print(f"[red]toxiproxy fetch failed:[/red] {error}", highlight=False)
        return 1
    return 0
