"""Which pipeline an operator command talks to, and the AWS clients to reach it: one place for all.

In this order: explicit options (`--stack`, `--queue-url`, `--prefix` / `--endpoint-url` or
`$AWS_ENDPOINT_URL`); else the local pipeline of a running `orderpipe run` (its state file); else a
clear error saying what to give. Every command prints which pipeline it talks to, on stderr.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

LOCAL_PREFIX = "orderpipe-local"
WHERE = (
    "Which pipeline: with no option, the local pipeline a running `orderpipe run` recorded in its state "
    "file (~/.local/state/orderpipe/local-pipeline.json); or --stack NAME (a deployed stack's outputs, "
    "with AWS's default credential chain: AWS_PROFILE, SSO, a role); or --prefix P with --endpoint-url "
    "(or $AWS_ENDPOINT_URL) for resources on another emulator. The first line on stderr says which "
    "pipeline the command talks to."
)


def add_where_arguments(parser: argparse.ArgumentParser, *, queue_urls: bool = False) -> None:
    where = parser.add_argument_group("which pipeline")
    if queue_urls:
        where.add_argument("--queue-url", help="URL of the orders queue")
        where.add_argument(
            "--dlq-url", help="URL of its dead-letter queue (default: from the redrive policy)"
        )
    where.add_argument("--stack", help="name of a deployed orderpipe stack (reads its outputs)")
    where.add_argument("--prefix", help=f"resource prefix on an emulator, e.g. {LOCAL_PREFIX}")
    where.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS endpoint of an emulator (default: $AWS_ENDPOINT_URL)",
    )
    where.add_argument("--region", help="AWS region (default: from the environment/profile)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


@dataclass(frozen=True)
class Connection:
    """Clients for the services a command asked for, and what to tell the operator about them."""

    clients: dict[str, Any]
    description: str
    local_pipeline: Any = None  # orderpipe_ops.local_pipeline.LocalPipeline when it is the target
    endpoint_url: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return self.clients[service]


def _explicit(args: argparse.Namespace) -> bool:
    names = ("queue_url", "stack", "prefix", "endpoint_url")
    return any(getattr(args, name, None) for name in names)


def connect(args: argparse.Namespace, services: Sequence[str]) -> Connection:
    """Clients for `services`, for the pipeline the arguments name (see the module docstring)."""
    import boto3
    from botocore.config import Config

    from orderpipe_ops import local_pipeline
    from orderpipe_ops.queues import OperatorError, is_local_endpoint

    # Standard retries, 2 attempts: throttling is retried; an unimplemented call (moto's HTTP 500 for
    # StartMessageMoveTask) fails in about a second instead of the legacy mode's ~10 s of backoff.
    config = Config(retries={"mode": "standard", "max_attempts": 2})
    pipeline = None if _explicit(args) else local_pipeline.read()
    if pipeline is not None:
        clients = {
            service: boto3.client(service, config=config, **pipeline.client_options(service))  # type: ignore[call-overload]
            for service in services
        }
        return Connection(clients, pipeline.description, pipeline, pipeline.aws_endpoint_url)
    if not _explicit(args):
        raise OperatorError(
            f"no pipeline to talk to: no local pipeline is running (no live {local_pipeline.state_file()}; "
            "start one with `orderpipe run`), and no --stack, --prefix or --queue-url was given"
        )
    options: dict[str, Any] = {"config": config}
    if args.endpoint_url and not args.stack:
        options["endpoint_url"] = args.endpoint_url
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region_name"] = region
    elif is_local_endpoint(args.endpoint_url):
        options["region_name"] = "us-east-1"
    session = boto3.Session()
    if is_local_endpoint(args.endpoint_url) and session.get_credentials() is None:
        # moto accepts any credentials; without these boto3 would refuse to sign.
        options.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    clients = {service: session.client(service, **options) for service in services}  # type: ignore[call-overload]
    if args.stack:
        description = f"stack {args.stack}" + (f" in {region}" if region else "")
    else:
        description = f"resources at {args.endpoint_url or 'AWS'}" + (
            f" (prefix {args.prefix})" if args.prefix else ""
        )
    return Connection(clients, description, None, options.get("endpoint_url"))


def say_where(connection: Connection) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"pipeline: {connection.description}", highlight=False, markup=False)


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Operator-facing failures (no such queue or stack, AWS refusals) as one red line and exit code 2."""

    def handler(args: argparse.Namespace) -> int:
        from botocore.exceptions import BotoCoreError, ClientError
        from rich.console import Console

        from orderpipe_ops.queues import OperatorError

        try:
            return int(run(args))
        except (OperatorError, ClientError, BotoCoreError) as error:
            Console(stderr=True).print(f"[red]error:[/red] {error}", highlight=False)
            return 2

    return handler
