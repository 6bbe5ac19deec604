"""`orderpipe`: the developer command line (local Cassandra, local runtime, load, queues, benchmarks).

Each command group lives in its own module under `orderpipe_dev.commands` and exposes
`register(subparsers)`, which adds its parser and sets `handler` (a function taking the parsed
arguments and returning an exit code). To add a group, write the module and list it in
`COMMAND_MODULES`; keep heavy imports inside the handlers so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from types import ModuleType

from rich.console import Console
from rich.logging import RichHandler

from orderpipe_dev.commands import bench, cassandra, drill, load, queue, run

COMMAND_MODULES: list[ModuleType] = [
    cassandra,
    run,
    load,
    bench,
    queue,
    drill,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orderpipe",
        description="Developer tools for orderpipe: run its parts on this machine.",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def _configure_logging(*, verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=True)],
    )
    # The driver and friends are chatty at INFO; their warnings still show.
    for noisy in ("cassandra", "urllib3", "botocore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(verbose=args.verbose, quiet=args.quiet)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
