"""`orderpipe`: one command line for everyone who works with orderpipe.

Command groups come from the packages installed next to this one, through the entry-point group
`orderpipe.commands` (each entry names a module exposing `AUDIENCE` and `register(subparsers)`,
which adds its parser and sets `handler`, a function taking the parsed arguments and returning an
exit code). A plain install of the ops package alone gives the operator commands; the repository's
development environment adds the local environment, the test kit, benchmarks and bulk import.
Keep heavy imports inside the handlers so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import ModuleType

from rich.console import Console
from rich.logging import RichHandler

ENTRY_POINT_GROUP = "orderpipe.commands"
# Who each kind of command is for, in the order `--help` lists them.
AUDIENCES = {
    "operator": "operate a running pipeline, local or deployed",
    "producer": "send orders to a running pipeline",
    "developer": "run and measure the pipeline on this machine",
}


def command_modules() -> list[ModuleType]:
    modules = [importlib.import_module(entry.value) for entry in entry_points(group=ENTRY_POINT_GROUP)]
    order = list(AUDIENCES)
    return sorted(modules, key=lambda m: (order.index(getattr(m, "AUDIENCE", "developer")), m.__name__))


def build_parser(modules: Sequence[ModuleType] | None = None) -> argparse.ArgumentParser:
    modules = command_modules() if modules is None else modules
    parser = argparse.ArgumentParser(
        prog="orderpipe",
        epilog="`orderpipe COMMAND --help` explains each command, with examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    commands_by_audience: dict[str, list[str]] = {audience: [] for audience in AUDIENCES}
    for module in modules:
        before = set(subparsers.choices)
        module.register(subparsers)
        added = [name for name in subparsers.choices if name not in before]
        commands_by_audience[getattr(module, "AUDIENCE", "developer")] += added
    parser.description = "orderpipe's command line. Commands by who they are for:\n" + "\n".join(
        f"  {audience:<10} {AUDIENCES[audience]}: {', '.join(names)}"
        for audience, names in commands_by_audience.items()
        if names
    )
    return parser


def _service_of(logger_name: str) -> str:
    """The part a log line comes from: `orderpipe.gateway` -> gateway, `orderpipe_devenv.cassandra.node`
    -> cassandra, the driver's `cassandra.cluster` -> cassandra-driver."""
    parts = logger_name.split(".")
    if parts[0] in {"orderpipe", "orderpipe_devenv", "orderpipe_testkit", "orderpipe_ops"} and len(parts) > 1:
        return parts[1].replace("_", "-")
    return {"cassandra": "cassandra-driver"}.get(parts[0], parts[0])


class _ServiceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.service = _service_of(record.name)
        return True


def _configure_logging(*, verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=True)
    # Every line names its part (gateway, event-source, runtime, cassandra, ...), as the functions'
    # JSON lines name theirs in "service".
    handler.addFilter(_ServiceFilter())
    logging.basicConfig(level=level, format="[%(service)s] %(message)s", datefmt="[%X]", handlers=[handler])
    # The driver and friends are chatty at INFO; their warnings still show.
    for noisy in ("cassandra", "urllib3", "botocore", "httpx"):
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
