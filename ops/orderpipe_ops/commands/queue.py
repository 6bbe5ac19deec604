"""`orderpipe queue status`, `orderpipe dlq inspect`, `orderpipe dlq redrive`: the operator's tools."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import Any

_WHERE = (
    "Which pipeline: with no option, the local pipeline a running `orderpipe run` recorded in its state "
    "file (~/.local/state/orderpipe/local-pipeline.json); or --stack NAME (a deployed stack's "
    "QueueUrl/DeadLetterQueueUrl outputs, AWS's default credential chain: AWS_PROFILE, SSO, a role); "
    "or --queue-url (and --dlq-url, else read from the queue's redrive policy); or --prefix P (queues "
    "named P-orders and P-orders-dlq) with --endpoint-url or $AWS_ENDPOINT_URL for another emulator. "
    "The first line on stderr says which pipeline the command talks to."
)
LOCAL_PREFIX = "orderpipe-local"
AUDIENCE = "operator"  # who this command is for (orderpipe_ops.cli groups --help by it)


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("queues")
    where.add_argument("--queue-url", help="URL of the orders queue")
    where.add_argument("--dlq-url", help="URL of its dead-letter queue (default: from the redrive policy)")
    where.add_argument("--stack", help="name of a deployed orderpipe stack (reads its outputs)")
    where.add_argument("--prefix", help=f"resource prefix, e.g. {LOCAL_PREFIX} for the local runtime")
    where.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS endpoint (default: $AWS_ENDPOINT_URL)",
    )
    where.add_argument("--region", help="AWS region (default: from the environment/profile)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def register(subparsers: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    queue = subparsers.add_parser(
        "queue",
        help="the orders queue: status against the alarm thresholds",
        description="Inspect the orders queue. " + _WHERE,
        formatter_class=formatter,
    )
    queue_commands = queue.add_subparsers(title="queue commands", metavar="COMMAND", required=True)
    status = queue_commands.add_parser(
        "status",
        help="visible, in flight, oldest message age, DLQ depth, each against its alarm threshold",
        description=(
            "Show the orders queue and its DLQ: visible messages, in flight, the age of the oldest "
            "message, each next to its alarm threshold from the shared PipelineTuning (exit code 3 "
            "when a measure is over its threshold).\n\nSQS has no attribute for the age of the oldest "
            "message. Deployed, it is read from the CloudWatch metric ApproximateAgeOfOldestMessage; "
            "against a local endpoint (moto publishes no SQS metrics) it is computed from the "
            "SentTimestamp of up to 10 messages peeked with VisibilityTimeout=0 (a peek counts as a "
            "receive). --age-source forces one.\n\n" + _WHERE + "\n\nExamples:\n"
            "  orderpipe queue status                      # the local pipeline of a running `orderpipe run`\n"
            "  orderpipe queue status --stack OrderPipe --region eu-west-1   # a deployed stack\n"
            "  orderpipe queue status --json               # for scripts (exit code 3 when in alarm)"
        ),
        formatter_class=formatter,
    )
    _add_target_arguments(status)
    status.add_argument(
        "--age-source",
        choices=["auto", "peek", "cloudwatch"],
        default="auto",
        help="how to get the oldest message's age (auto: peek on a local endpoint, else CloudWatch)",
    )
    status.set_defaults(handler=run_status)

    dlq = subparsers.add_parser(
        "dlq",
        help="the dead-letter queue: inspect (why messages failed) and redrive",
        description="Work with the orders DLQ. " + _WHERE,
        formatter_class=formatter,
    )
    dlq_commands = dlq.add_subparsers(title="dlq commands", metavar="COMMAND", required=True)
    inspect = dlq_commands.add_parser(
        "inspect",
        help="decoded envelopes and why they failed, without consuming them",
        description=(
            "Show DLQ messages: the decoded order (id, customer, items) or, for a message whose "
            "envelope does not decode, the parse error and the raw body. Nothing is consumed: messages "
            "are received with a short visibility timeout and made visible again at once.\n\n"
            + _WHERE
            + "\n\nExamples:\n  orderpipe dlq inspect --max-messages 5     # the local pipeline\n"
            "  orderpipe dlq inspect --stack OrderPipe --region eu-west-1 --json"
        ),
        formatter_class=formatter,
    )
    _add_target_arguments(inspect)
    inspect.add_argument("--max-messages", type=int, default=10, help="how many messages to show")
    inspect.set_defaults(handler=run_inspect)

    redrive = dlq_commands.add_parser(
        "redrive",
        help="move DLQ messages back to the orders queue (send first, then delete)",
        description=(
            "Move messages from the DLQ back to the orders queue without ever losing one. Uses SQS "
            "StartMessageMoveTask where the endpoint supports it (AWS; moves everything); otherwise, "
            "and always with --max-messages, by hand: each message is sent to the queue first and "
            "deleted from the DLQ only after the send succeeded (an interruption can duplicate a "
            "message, never lose it; the writer's upserts make duplicates harmless).\n\n"
            + _WHERE
            + "\n\nExamples:\n  orderpipe dlq redrive --dry-run           # the local pipeline: count what would move\n"
            "  orderpipe dlq redrive --stack OrderPipe --max-messages 100"
        ),
        formatter_class=formatter,
    )
    _add_target_arguments(redrive)
    redrive.add_argument("--max-messages", type=int, help="move at most this many (default: all)")
    redrive.add_argument("--dry-run", action="store_true", help="count what would move; move nothing")
    redrive.add_argument(
        "--no-move-task", action="store_true", help="don't try StartMessageMoveTask; send-then-delete by hand"
    )
    redrive.add_argument("--no-progress", action="store_true", help="no progress bar")
    redrive.set_defaults(handler=run_redrive)


@dataclass(frozen=True)
class _Target:
    """The queues a command works on, the clients to reach them, and how to say which pipeline it is."""

    sqs: Any
    cloudwatch: Any
    cloudformation: Any
    queues: Any  # orderpipe_ops.queues.QueuePair
    description: str


def _explicit(args: argparse.Namespace) -> bool:
    return bool(args.queue_url or args.stack or args.prefix or args.endpoint_url)


def _target(args: argparse.Namespace) -> _Target:
    """Explicit options win; else the local pipeline of a running `orderpipe run`; else AWS."""
    import boto3
    from botocore.config import Config

    from orderpipe_ops import local_pipeline
    from orderpipe_ops.queues import QueuePair, is_local_endpoint, resolve_queues

    # Standard retries, 2 attempts: throttling is retried; an unimplemented call (moto's HTTP 500 for
    # StartMessageMoveTask) fails in about a second instead of the legacy mode's ~10 s of backoff.
    config = Config(retries={"mode": "standard", "max_attempts": 2})
    pipeline = None if _explicit(args) else local_pipeline.read()
    if pipeline is not None:
        sqs, cloudwatch, cloudformation = (
            boto3.client(service, config=config, **pipeline.client_options(service))
            for service in ("sqs", "cloudwatch", "cloudformation")
        )
        queues = QueuePair(queue_url=pipeline.queue_url, dlq_url=pipeline.dlq_url)
        return _Target(sqs, cloudwatch, cloudformation, queues, pipeline.description)

    if not _explicit(args):
        raise _no_target_error()
    options: dict[str, Any] = {"config": config}
    if args.endpoint_url:
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
    sqs, cloudwatch, cloudformation = (
        session.client(service, **options) for service in ("sqs", "cloudwatch", "cloudformation")
    )
    prefix = args.prefix
    if not (args.queue_url or args.stack or prefix) and args.endpoint_url:
        prefix = LOCAL_PREFIX
    queues = resolve_queues(
        sqs,
        queue_url=args.queue_url,
        dlq_url=args.dlq_url,
        stack=args.stack,
        prefix=prefix,
        cloudformation=cloudformation,
    )
    where = (
        f"stack {args.stack}"
        if args.stack
        else f"queues at {args.endpoint_url or 'AWS'}" + (f" (prefix {prefix})" if prefix else "")
    )
    return _Target(sqs, cloudwatch, cloudformation, queues, where)


def _no_target_error() -> Exception:
    from orderpipe_ops import local_pipeline
    from orderpipe_ops.queues import OperatorError

    return OperatorError(
        f"no pipeline to talk to: no local pipeline is running (no live {local_pipeline.state_file()}; "
        "start one with `orderpipe run`), and no --stack, --prefix or --queue-url was given"
    )


def _say_where(target: _Target) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"pipeline: {target.description}", highlight=False, markup=False)


def _guarded(run: Any) -> Any:
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


def _format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if unit == "s" else f"{value:.0f}"


@_guarded
def run_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from orderpipe_ops.queues import queue_status, thresholds_from_alarms

    target = _target(args)
    _say_where(target)
    sqs, cloudwatch, queues = target.sqs, target.cloudwatch, target.queues
    # The alarms themselves say where they fire (the local runtime creates the stack's queue alarms).
    thresholds = thresholds_from_alarms(cloudwatch, queues)
    status = queue_status(
        sqs,
        queues,
        thresholds=thresholds,
        age_source=args.age_source,
        endpoint_url=target.sqs.meta.endpoint_url,
        cloudwatch=cloudwatch,
    )
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
        return 3 if status.alarming else 0
    console = Console()
    table = Table(title=f"{queues.queue_name} / {queues.dlq_name}", title_justify="left")
    for column in ("measure", "value", "alarm threshold", "state"):
        table.add_column(column, justify="right" if column in {"value", "alarm threshold"} else "left")
    for measure in status.measures:
        threshold = (
            "-" if measure.threshold is None else f"> {_format_value(measure.threshold, measure.unit)}"
        )
        state = "[red]ALARM[/red]" if measure.alarming else ("ok" if measure.threshold is not None else "")
        value = _format_value(measure.value, measure.unit) + (f" ({measure.note})" if measure.note else "")
        table.add_row(measure.name, value, threshold, state)
    console.print(table)
    console.print(f"age source: {status.age_source}", highlight=False)
    console.print(f"alarm thresholds: {status.thresholds_source}", highlight=False)
    return 3 if status.alarming else 0


@_guarded
def run_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console

    from orderpipe_ops.queues import dlq_depth, inspect_dlq

    target = _target(args)
    _say_where(target)
    sqs, queues = target.sqs, target.queues
    letters = inspect_dlq(sqs, queues.dlq_url, max_messages=args.max_messages)
    if args.json:
        print(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return 0
    console = Console()
    depth = dlq_depth(sqs, queues.dlq_url)
    console.print(
        f"{queues.dlq_name}: about {depth} visible; showing {len(letters)} (none consumed)", highlight=False
    )
    for letter in letters:
        sent = letter.sent_at.strftime("%Y-%m-%d %H:%M:%S UTC") if letter.sent_at else "?"
        console.print(
            f"\n[bold]{letter.message_id}[/bold]  received {letter.receive_count}x  sent {sent}",
            highlight=False,
        )
        if letter.order is not None:
            items = ", ".join(
                f"{i['quantity']} x {i['sku']} @ {i['unit_price']}" for i in letter.order["items"]
            )
            console.print(
                f"  order {letter.order_id}  customer {letter.order['customer_id']}  "
                f"{letter.order['currency']}  [{items}]",
                highlight=False,
                markup=False,
            )
        else:
            console.print(f"  body: {letter.body[:200]!r}", highlight=False, markup=False)
        console.print(f"  why:  {letter.reason}", highlight=False, markup=False)
    return 0


@_guarded
def run_redrive(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from orderpipe_ops.queues import dlq_depth, redrive

    target = _target(args)
    _say_where(target)
    sqs, queues = target.sqs, target.queues
    console = Console(stderr=True)
    depth = dlq_depth(sqs, queues.dlq_url)
    total = min(depth, args.max_messages) if args.max_messages is not None else depth
    verb = "would move" if args.dry_run else "moving"
    with Progress(
        TextColumn(f"{verb} {queues.dlq_name} -> {queues.queue_name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=args.no_progress or args.json,
    ) as progress:
        task = progress.add_task("redrive", total=total or None)
        result = redrive(
            sqs,
            queues,
            max_messages=args.max_messages,
            dry_run=args.dry_run,
            use_move_task=not args.no_move_task,
            progress=lambda count: progress.advance(task, count),
        )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        out = Console()
        done = "would be moved (dry run, nothing changed)" if args.dry_run else "moved"
        out.print(f"{result.moved} message(s) {done} via {result.method}", highlight=False)
        if result.fallback_reason and not args.dry_run:
            out.print(f"  (send-then-delete because {result.fallback_reason})", highlight=False)
        if result.failed_sends or result.failed_deletes:
            out.print(
                f"  {result.failed_sends} not sent (left in the DLQ), {result.failed_deletes} sent but not "
                "deleted (still in the DLQ: a second redrive duplicates them harmlessly)",
                highlight=False,
            )
    return 1 if result.failed_sends else 0
