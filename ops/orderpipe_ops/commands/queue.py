"""`orderpipe queue status`, `orderpipe dlq inspect`, `orderpipe dlq redrive`: the operator's tools."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from orderpipe_ops.commands.targets import (
    LOCAL_PREFIX,
    WHERE,
    Connection,
    add_where_arguments,
    connect,
    guarded,
    say_where,
)

AUDIENCE = "operator"  # who this command is for (orderpipe_ops.cli groups --help by it)


def register(subparsers: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    queue = subparsers.add_parser(
        "queue",
        help="the orders queue: status against the alarm thresholds",
        description="Inspect the orders queue. " + WHERE,
        formatter_class=formatter,
    )
    queue_commands = queue.add_subparsers(title="queue commands", metavar="COMMAND", required=True)
    status = queue_commands.add_parser(
        "status",
        help="visible, in flight, oldest message age, DLQ depth, each against its alarm threshold",
        description=(
            "Show the orders queue and its DLQ: visible messages, in flight, the age of the oldest "
            "message, each next to the threshold of the CloudWatch alarm that watches it (exit code 3 "
            "when a measure is over its threshold), and the queues' budget read from their attributes: "
            "how long a Cassandra outage can last before orders reach the DLQ ((maxReceiveCount - 1) x "
            "visibility timeout) and the retention of each queue.\n\nSQS has no attribute for the age of the oldest "
            "message. Deployed, it is read from the CloudWatch metric ApproximateAgeOfOldestMessage; "
            "against a local endpoint (ElasticMQ publishes no metrics) it is computed from the "
            "SentTimestamp of up to 10 messages peeked with VisibilityTimeout=0 (a peek counts as a "
            "receive). --age-source forces one.\n\n" + WHERE + "\n\nExamples:\n"
            "  orderpipe queue status                      # the local pipeline of a running `orderpipe run`\n"
            "  orderpipe queue status --stack OrderPipe --region eu-west-1   # a deployed stack\n"
            "  orderpipe queue status --json               # for scripts (exit code 3 when in alarm)"
        ),
        formatter_class=formatter,
    )
    add_where_arguments(status, queue_urls=True)
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
        description="Work with the orders DLQ. " + WHERE,
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
            + WHERE
            + "\n\nExamples:\n  orderpipe dlq inspect --max-messages 5     # the local pipeline\n"
            "  orderpipe dlq inspect --stack OrderPipe --region eu-west-1 --json"
        ),
        formatter_class=formatter,
    )
    add_where_arguments(inspect, queue_urls=True)
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
            + WHERE
            + "\n\nExamples:\n  orderpipe dlq redrive --dry-run           # the local pipeline: count what would move\n"
            "  orderpipe dlq redrive --stack OrderPipe --max-messages 100"
        ),
        formatter_class=formatter,
    )
    add_where_arguments(redrive, queue_urls=True)
    redrive.add_argument("--max-messages", type=int, help="move at most this many (default: all)")
    redrive.add_argument("--dry-run", action="store_true", help="count what would move; move nothing")
    redrive.add_argument(
        "--no-move-task", action="store_true", help="don't try StartMessageMoveTask; send-then-delete by hand"
    )
    redrive.add_argument("--no-progress", action="store_true", help="no progress bar")
    redrive.set_defaults(handler=run_redrive)


@dataclass(frozen=True)
class _Target:
    """The queues a command works on, with the clients to reach them."""

    connection: Connection
    queues: Any  # orderpipe_ops.queues.QueuePair

    @property
    def sqs(self) -> Any:
        return self.connection.client("sqs")


def _target(args: argparse.Namespace) -> _Target:
    from orderpipe_ops.queues import QueuePair, resolve_queues

    connection = connect(args, ("sqs", "cloudwatch", "cloudformation"))
    say_where(connection)
    pipeline = connection.local_pipeline
    if pipeline is not None:
        return _Target(connection, QueuePair(queue_url=pipeline.queue_url, dlq_url=pipeline.dlq_url))
    prefix = args.prefix
    if not (args.queue_url or args.stack or prefix) and args.endpoint_url:
        prefix = LOCAL_PREFIX
    queues = resolve_queues(
        connection.client("sqs"),
        queue_url=args.queue_url,
        dlq_url=args.dlq_url,
        stack=args.stack,
        prefix=prefix,
        cloudformation=connection.client("cloudformation"),
    )
    return _Target(connection, queues)


def _format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if unit == "s" else f"{value:.0f}"


@guarded
def run_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from orderpipe_ops.queues import queue_status, thresholds_from_alarms

    target = _target(args)
    sqs, cloudwatch, queues = target.sqs, target.connection.client("cloudwatch"), target.queues
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
    if status.budget is not None:
        _print_budget(console, status)
    console.print(f"age source: {status.age_source}", highlight=False)
    console.print(f"alarm thresholds: {status.thresholds_source}", highlight=False)
    return 3 if status.alarming else 0


def _duration(seconds: float) -> str:
    if seconds >= 86_400 and seconds % 86_400 == 0:
        return f"{seconds / 86_400:.0f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _retention(seconds: int | None) -> str:
    return _duration(seconds) if seconds is not None else "not reported by this endpoint"


def _print_budget(console: Any, status: Any) -> None:
    budget = status.budget
    if budget.outage_budget_seconds is not None:
        console.print(
            f"Cassandra outage survived before orders reach the DLQ: {_duration(budget.outage_budget_seconds)} "
            f"(maxReceiveCount {budget.max_receive_count}, retried every {budget.visibility_timeout_seconds} s, "
            "the visibility timeout)",
            highlight=False,
        )
    console.print(
        f"retention: queue {_retention(budget.queue_retention_seconds)}, "
        f"DLQ {_retention(budget.dlq_retention_seconds)}",
        highlight=False,
    )
    for problem in status.budget_problems:
        console.print(f"[yellow]warning:[/yellow] {problem}", highlight=False)


@guarded
def run_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console

    from orderpipe_ops.queues import dlq_depth, inspect_dlq

    target = _target(args)
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


@guarded
def run_redrive(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from orderpipe_ops.queues import dlq_depth, redrive

    target = _target(args)
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
