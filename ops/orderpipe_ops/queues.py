"""The operator's tools: queue status, DLQ inspection and redrive (logic for `orderpipe queue|dlq`).

Everything takes boto3 clients, so the same code runs against the local runtime (SQS on ElasticMQ,
CloudWatch on moto) and a deployed stack (the default credential chain).

- `queue_status`: visible, in flight and the age of the oldest message for the orders queue and
  its DLQ, each against the threshold of the CloudWatch alarm that watches it
  (`thresholds_from_alarms`: the stack's alarms, or the same ones the local runtime creates). SQS
  has no attribute for the age: AWS publishes it only as the CloudWatch metric
  `ApproximateAgeOfOldestMessage`. Against a local endpoint (nothing publishes SQS metrics there)
  the age is computed by peeking at the messages' `SentTimestamp` (a receive with
  VisibilityTimeout=0); the result says which source was used.
- `inspect_dlq`: decoded envelopes and why they failed, without consuming anything: messages are
  received with a short visibility timeout and made visible again at once.
- `redrive`: DLQ -> queue without ever losing a message. `StartMessageMoveTask` where the endpoint
  implements it; otherwise (e.g. moto answers HTTP 500) by hand: send each message to the queue first,
  and delete it from the DLQ only once the send succeeded. A crash in between can duplicate a
  message, never lose one; the writer's upserts make a duplicate harmless.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

SQS_MAX_BATCH = 10
# Envelope versions a writer reads, for the shape check (a unit test keeps it in step with
# orderpipe_common.envelope).
KNOWN_SCHEMA_VERSIONS = frozenset({1, 2})
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
AgeSource = Literal["auto", "peek", "cloudwatch"]


class OperatorError(RuntimeError):
    """A clear, user-facing failure (unknown queue, stack without outputs, ...)."""


# --- which queues --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuePair:
    queue_url: str
    dlq_url: str

    @staticmethod
    def name_of(url: str) -> str:
        return url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def queue_name(self) -> str:
        return self.name_of(self.queue_url)

    @property
    def dlq_name(self) -> str:
        return self.name_of(self.dlq_url)


def is_local_endpoint(endpoint_url: str | None) -> bool:
    return bool(endpoint_url) and (urlparse(endpoint_url).hostname or "") in LOCAL_HOSTS


def resolve_queues(
    sqs: Any,
    *,
    queue_url: str | None = None,
    dlq_url: str | None = None,
    stack: str | None = None,
    prefix: str | None = None,
    cloudformation: Any = None,
) -> QueuePair:
    """Explicit URLs win; else a deployed stack's outputs; else queues named `<prefix>-orders[-dlq]`.

    A missing DLQ URL is read from the queue's redrive policy.
    """
    if not queue_url and stack:
        if cloudformation is None:
            raise OperatorError("a CloudFormation client is needed to read the stack's outputs")
        try:
            stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
        except ClientError as error:
            raise OperatorError(f"stack {stack!r}: {error.response['Error'].get('Message', error)}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        queue_url = outputs.get("QueueUrl")
        dlq_url = dlq_url or outputs.get("DeadLetterQueueUrl")
        if not queue_url:
            raise OperatorError(f"stack {stack!r} has no QueueUrl output")
    if not queue_url and prefix:
        queue_url = _queue_url_by_name(sqs, f"{prefix}-orders")
    if not queue_url:
        raise OperatorError("name the queues: --queue-url (and --dlq-url), --stack or --prefix")
    if not dlq_url:
        dlq_url = _dlq_of(sqs, queue_url)
    return QueuePair(queue_url=queue_url, dlq_url=dlq_url)


def _queue_url_by_name(sqs: Any, name: str) -> str:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as error:
        raise OperatorError(f"no queue named {name!r} on this endpoint ({_code(error)})") from None


def _dlq_of(sqs: Any, queue_url: str) -> str:
    attributes = _attributes(sqs, queue_url, ["RedrivePolicy"])
    policy = attributes.get("RedrivePolicy")
    if not policy:
        raise OperatorError(f"{queue_url} has no redrive policy: give --dlq-url")
    dlq_arn = json.loads(policy)["deadLetterTargetArn"]
    account, name = dlq_arn.split(":")[4], dlq_arn.split(":")[5]
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def _attributes(sqs: Any, url: str, names: list[str]) -> dict[str, str]:
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes", {}))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "error"))


# --- status --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    name: str
    value: float | None
    threshold: float | None  # alarm when value > threshold; None: no alarm on this measure
    unit: str = "messages"
    note: str = ""

    @property
    def alarming(self) -> bool:
        return self.value is not None and self.threshold is not None and self.value > self.threshold


@dataclass(frozen=True)
class AlarmThresholds:
    """The values over which the pipeline's alarms fire (None: no alarm known for that measure)."""

    queue_visible_messages: float | None = None
    oldest_message_age_seconds: float | None = None
    dlq_visible_messages: float | None = None
    source: str = "none known"


# The CloudWatch metric each threshold watches (AWS/SQS, by QueueName).
_ALARMED_METRICS = {
    "queue_visible_messages": ("queue", "ApproximateNumberOfMessagesVisible"),
    "oldest_message_age_seconds": ("queue", "ApproximateAgeOfOldestMessage"),
    "dlq_visible_messages": ("dlq", "ApproximateNumberOfMessagesVisible"),
}


def thresholds_from_alarms(cloudwatch: Any, queues: QueuePair) -> AlarmThresholds:
    """The thresholds of the alarms that watch these queues' metrics (the deployed stack's own)."""
    found: dict[str, float] = {}
    for field_name, (which, metric) in _ALARMED_METRICS.items():
        queue_name = queues.queue_name if which == "queue" else queues.dlq_name
        dimensions = [{"Name": "QueueName", "Value": queue_name}]
        alarms = [
            alarm
            for alarm in cloudwatch.describe_alarms_for_metric(
                MetricName=metric, Namespace="AWS/SQS", Dimensions=dimensions
            ).get("MetricAlarms", [])
            # Some endpoints (moto) ignore the dimension filter.
            if alarm.get("Dimensions") == dimensions
        ]
        if alarms:
            found[field_name] = min(float(alarm["Threshold"]) for alarm in alarms)
    return AlarmThresholds(**found, source="the stack's CloudWatch alarms") if found else AlarmThresholds()


@dataclass(frozen=True)
class QueueBudget:
    """What the live queues' attributes promise (read from SQS, not from the repository's settings)."""

    visibility_timeout_seconds: int
    max_receive_count: int | None  # None: the queue has no redrive policy
    # None: the endpoint does not say (ElasticMQ keeps messages until deleted and reports no retention).
    queue_retention_seconds: int | None
    dlq_retention_seconds: int | None

    @property
    def outage_budget_seconds(self) -> int | None:
        """How long Cassandra may be unavailable before orders reach the DLQ.

        A message the writer cannot store comes back after each visibility timeout; its last chance
        is receive number maxReceiveCount, (maxReceiveCount - 1) timeouts after the first. (The same
        formula as orderpipe_common.tuning.outage_budget_seconds; a unit test keeps them in step.)
        """
        if self.max_receive_count is None:
            return None
        return (self.max_receive_count - 1) * self.visibility_timeout_seconds

    def problems(self, *, age_alarm_seconds: float | None = None) -> list[str]:
        """What makes the budget weaker than it looks (empty when nothing does)."""
        found = []
        budget = self.outage_budget_seconds
        if budget is None:
            found.append("no redrive policy: failed orders are retried until the queue's retention ends")
        elif self.queue_retention_seconds is not None and budget >= self.queue_retention_seconds:
            found.append(
                "the queue's retention is shorter than the outage budget: orders expire before the DLQ"
            )
        queue_keeps, dlq_keeps = self.queue_retention_seconds, self.dlq_retention_seconds
        if queue_keeps is not None and dlq_keeps is not None and queue_keeps >= dlq_keeps:
            found.append(
                "the queue keeps messages as long as the DLQ or longer: a message keeps its enqueue time "
                "when it moves, so its time in the queue comes off its time in the DLQ"
            )
        if budget is not None and age_alarm_seconds is not None and age_alarm_seconds > budget / 2:
            found.append("the oldest-message-age alarm fires late: at more than half the outage budget")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "visibility_timeout_seconds": self.visibility_timeout_seconds,
            "max_receive_count": self.max_receive_count,
            "cassandra_outage_budget_seconds": self.outage_budget_seconds,
            "queue_retention_seconds": self.queue_retention_seconds,
            "dlq_retention_seconds": self.dlq_retention_seconds,
        }


def queue_budget(sqs: Any, queues: QueuePair) -> QueueBudget:
    queue = _attributes(
        sqs, queues.queue_url, ["VisibilityTimeout", "RedrivePolicy", "MessageRetentionPeriod"]
    )
    dlq = _attributes(sqs, queues.dlq_url, ["MessageRetentionPeriod"])
    policy = queue.get("RedrivePolicy")
    return QueueBudget(
        visibility_timeout_seconds=int(queue["VisibilityTimeout"]),
        max_receive_count=int(json.loads(policy)["maxReceiveCount"]) if policy else None,
        queue_retention_seconds=_seconds(queue.get("MessageRetentionPeriod")),
        dlq_retention_seconds=_seconds(dlq.get("MessageRetentionPeriod")),
    )


def _seconds(value: str | None) -> int | None:
    return int(value) if value is not None else None


@dataclass(frozen=True)
class QueueStatus:
    queues: QueuePair
    measures: list[Measure]
    age_source: str  # "peek (SentTimestamp)" or "CloudWatch ApproximateAgeOfOldestMessage"
    thresholds_source: str = "none known"
    budget: QueueBudget | None = None

    @property
    def budget_problems(self) -> list[str]:
        if self.budget is None:
            return []
        age = next((m.threshold for m in self.measures if m.name == "queue oldest message age"), None)
        return self.budget.problems(age_alarm_seconds=age)

    @property
    def alarming(self) -> list[Measure]:
        return [m for m in self.measures if m.alarming]

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue_url": self.queues.queue_url,
            "dlq_url": self.queues.dlq_url,
            "age_source": self.age_source,
            "thresholds_source": self.thresholds_source,
            "budget": self.budget.as_dict() if self.budget else None,
            "budget_problems": self.budget_problems,
            "measures": [
                {
                    "name": m.name,
                    "value": m.value,
                    "threshold": m.threshold,
                    "unit": m.unit,
                    "alarm": m.alarming,
                    "note": m.note,
                }
                for m in self.measures
            ],
        }


def peek_oldest_age_seconds(sqs: Any, queue_url: str, *, now: float | None = None) -> float | None:
    """Age of the oldest message among those one receive returns (VisibilityTimeout=0: they stay
    visible). Note: like any receive, a peek raises each message's ApproximateReceiveCount."""
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=SQS_MAX_BATCH,
        VisibilityTimeout=0,
        WaitTimeSeconds=0,
        AttributeNames=["SentTimestamp"],
    ).get("Messages", [])
    if not messages:
        return None
    oldest_ms = min(int(m["Attributes"]["SentTimestamp"]) for m in messages)
    return max(0.0, (now if now is not None else time.time()) - oldest_ms / 1000)


def cloudwatch_oldest_age_seconds(cloudwatch: Any, queue_name: str, *, minutes: int = 15) -> float | None:
    """The latest 1-minute maximum of AWS/SQS ApproximateAgeOfOldestMessage (None: no datapoint)."""
    end = datetime.now(UTC)
    datapoints = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue_name}],
        StartTime=end - timedelta(minutes=minutes),
        EndTime=end + timedelta(minutes=1),  # a datapoint stamped "now" is inside the window
        Period=60,
        Statistics=["Maximum"],
    ).get("Datapoints", [])
    if not datapoints:
        return None
    latest = max(datapoints, key=lambda point: point["Timestamp"])
    return float(latest["Maximum"])


def queue_status(
    sqs: Any,
    queues: QueuePair,
    *,
    thresholds: AlarmThresholds | None = None,
    age_source: AgeSource = "auto",
    endpoint_url: str | None = None,
    cloudwatch: Any = None,
) -> QueueStatus:
    thresholds = thresholds or AlarmThresholds()
    counts = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    queue = _attributes(sqs, queues.queue_url, counts)
    dlq = _attributes(sqs, queues.dlq_url, counts)
    use_peek = age_source == "peek" or (age_source == "auto" and is_local_endpoint(endpoint_url))
    if use_peek:
        source = "peek (SentTimestamp of up to 10 visible messages)"
        age = peek_oldest_age_seconds(sqs, queues.queue_url)
        dlq_age = peek_oldest_age_seconds(sqs, queues.dlq_url)
    else:
        if cloudwatch is None:
            raise OperatorError("a CloudWatch client is needed for the age of the oldest message")
        source = "CloudWatch AWS/SQS ApproximateAgeOfOldestMessage (latest 1-minute maximum)"
        age = cloudwatch_oldest_age_seconds(cloudwatch, queues.queue_name)
        dlq_age = cloudwatch_oldest_age_seconds(cloudwatch, queues.dlq_name)
    none_note = "no message" if use_peek else "no datapoint"
    measures = [
        Measure(
            "queue visible", float(queue["ApproximateNumberOfMessages"]), thresholds.queue_visible_messages
        ),
        Measure("queue in flight", float(queue["ApproximateNumberOfMessagesNotVisible"]), None),
        Measure(
            "queue oldest message age",
            age,
            thresholds.oldest_message_age_seconds,
            unit="s",
            note=none_note if age is None else "",
        ),
        Measure("DLQ visible", float(dlq["ApproximateNumberOfMessages"]), thresholds.dlq_visible_messages),
        Measure("DLQ in flight", float(dlq["ApproximateNumberOfMessagesNotVisible"]), None),
        Measure("DLQ oldest message age", dlq_age, None, unit="s", note=none_note if dlq_age is None else ""),
    ]
    return QueueStatus(
        queues=queues,
        measures=measures,
        age_source=source,
        thresholds_source=thresholds.source,
        budget=queue_budget(sqs, queues),
    )


# --- inspect -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receive_count: int | None
    sent_at: datetime | None
    body: str
    order_id: str | None  # when the envelope decodes
    order: dict[str, Any] | None
    reason: str

    @property
    def decodes(self) -> bool:
        return self.order_id is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "receive_count": self.receive_count,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "order_id": self.order_id,
            "reason": self.reason,
            "order": self.order,
            "body": None if self.decodes else self.body,
        }


def explain(body: str) -> tuple[str | None, dict[str, Any] | None, str]:
    """(order_id, order, reason) for a DLQ message body.

    With the order model installed (orderpipe_common, as in the repository's environment) the body
    is decoded exactly as the writer decodes it. Without it (this package installed alone) only
    the envelope's shape is checked, and the reason says so: a body that passes may still be one
    the writer refuses (its log names the error of each attempt).
    """
    try:
        from orderpipe_common.envelope import UnreadableMessageError, parse_envelope
    except ImportError:
        return _explain_shape(body)
    try:
        order = parse_envelope(body)
    except UnreadableMessageError as error:
        return None, None, f"unreadable envelope: {error}"
    return str(order.order_id), order.model_dump(mode="json"), _READABLE


_READABLE = (
    "readable envelope: the writer could not store it within maxReceiveCount receives "
    "(e.g. Cassandra unavailable); redrive it once the cause is fixed"
)


def _explain_shape(body: str) -> tuple[str | None, dict[str, Any] | None, str]:
    try:
        envelope = json.loads(body)
    except ValueError as error:
        return None, None, f"unreadable envelope: not JSON ({error})"
    if not isinstance(envelope, dict):
        return None, None, "unreadable envelope: not a JSON object"
    version = envelope.get("schema_version")
    if version not in KNOWN_SCHEMA_VERSIONS:
        known = ", ".join(str(v) for v in sorted(KNOWN_SCHEMA_VERSIONS))
        return None, None, f"unreadable envelope: schema_version {version!r} is not one of {known}"
    order = envelope.get("order")
    try:
        order_id = str(uuid.UUID(str(order["order_id"]))) if isinstance(order, dict) else None
    except (KeyError, ValueError):
        order_id = None
    if order_id is None or not isinstance(order, dict):
        return None, None, "unreadable envelope: no order with an order_id"
    return order_id, order, _READABLE + " (envelope shape checked only: orderpipe_common is not installed)"


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    attributes = message.get("Attributes", {})
    order_id, order, reason = explain(message["Body"])
    sent = attributes.get("SentTimestamp")
    count = attributes.get("ApproximateReceiveCount")
    return DeadLetter(
        message_id=message["MessageId"],
        receive_count=int(count) if count else None,
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
        body=message["Body"],
        order_id=order_id,
        order=order,
        reason=reason,
    )


def _peek_all(
    sqs: Any, queue_url: str, *, max_messages: int, hold_seconds: int
) -> Iterator[list[dict[str, Any]]]:
    """Receive up to `max_messages` distinct messages, holding each invisible for `hold_seconds`
    (so a round does not see the same one twice), then make every one visible again."""
    held: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        empty_rounds = 0
        while len(seen) < max_messages and empty_rounds < 2:
            batch = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(SQS_MAX_BATCH, max_messages - len(seen)),
                VisibilityTimeout=hold_seconds,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            held += batch
            fresh = [m for m in batch if m["MessageId"] not in seen]
            seen.update(m["MessageId"] for m in fresh)
            empty_rounds = 0 if fresh else empty_rounds + 1
            if fresh:
                yield fresh
    finally:
        release(sqs, queue_url, held)


def release(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    """Make received messages visible again now (VisibilityTimeout 0)."""
    for start in range(0, len(messages), SQS_MAX_BATCH):
        chunk = messages[start : start + SQS_MAX_BATCH]
        # On failure they become visible anyway when the short hold ends.
        with contextlib.suppress(ClientError, BotoCoreError):
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )


def inspect_dlq(
    sqs: Any, dlq_url: str, *, max_messages: int = 10, hold_seconds: int = 30
) -> list[DeadLetter]:
    """Up to `max_messages` DLQ messages, decoded and explained; none is consumed."""
    letters: list[DeadLetter] = []
    for batch in _peek_all(sqs, dlq_url, max_messages=max_messages, hold_seconds=hold_seconds):
        letters += [_dead_letter(m) for m in batch]
    return letters


# --- redrive -------------------------------------------------------------------------------------


@dataclass
class RedriveResult:
    method: Literal["StartMessageMoveTask", "send-then-delete", "dry-run"]
    moved: int = 0
    failed_sends: int = 0
    failed_deletes: int = 0  # sent but still in the DLQ: they may be redriven twice (harmless)
    fallback_reason: str = ""
    task_handle: str = ""
    message_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "moved": self.moved,
            "failed_sends": self.failed_sends,
            "failed_deletes": self.failed_deletes,
            "fallback_reason": self.fallback_reason,
            "task_handle": self.task_handle,
        }


Progress = Callable[[int], None]


def dlq_depth(sqs: Any, dlq_url: str) -> int:
    return int(_attributes(sqs, dlq_url, ["ApproximateNumberOfMessages"])["ApproximateNumberOfMessages"])


def redrive(
    sqs: Any,
    queues: QueuePair,
    *,
    max_messages: int | None = None,
    dry_run: bool = False,
    use_move_task: bool = True,
    progress: Progress | None = None,
    move_task_timeout_seconds: float = 600,
) -> RedriveResult:
    """Move DLQ messages back to the queue; never deletes one that was not sent."""
    progress = progress or (lambda _count: None)
    if dry_run:
        result = RedriveResult(method="dry-run")
        for batch in _peek_all(sqs, queues.dlq_url, max_messages=max_messages or 10**9, hold_seconds=30):
            result.moved += len(batch)
            result.message_ids += [m["MessageId"] for m in batch]
            progress(len(batch))
        return result
    fallback_reason = "--max-messages limits the count (StartMessageMoveTask moves everything)"
    if use_move_task and max_messages is None:
        try:
            return _move_task(sqs, queues, progress, move_task_timeout_seconds)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            fallback_reason = f"StartMessageMoveTask not available here: {_code(error)} (HTTP {status})"
    elif not use_move_task:
        fallback_reason = "StartMessageMoveTask not requested"
    result = _send_then_delete(sqs, queues, max_messages, progress)
    result.fallback_reason = fallback_reason
    return result


def _move_task(sqs: Any, queues: QueuePair, progress: Progress, timeout_seconds: float) -> RedriveResult:
    source_arn = _attributes(sqs, queues.dlq_url, ["QueueArn"])["QueueArn"]
    destination_arn = _attributes(sqs, queues.queue_url, ["QueueArn"])["QueueArn"]
    handle = sqs.start_message_move_task(SourceArn=source_arn, DestinationArn=destination_arn)["TaskHandle"]
    result = RedriveResult(method="StartMessageMoveTask", task_handle=handle)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        tasks = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=10).get("Results", [])
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else None)
        if task is None:
            break
        moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        if moved > result.moved:
            progress(moved - result.moved)
            result.moved = moved
        status = task.get("Status")
        if status == "COMPLETED":
            return result
        if status in {"FAILED", "CANCELLED"}:
            raise OperatorError(f"message move task {status.lower()}: {task.get('FailureReason', '')}")
        time.sleep(2)
    raise OperatorError(f"message move task {handle} still running after {timeout_seconds:.0f} s")


def _send_then_delete(
    sqs: Any, queues: QueuePair, max_messages: int | None, progress: Progress
) -> RedriveResult:
    result = RedriveResult(method="send-then-delete")
    limit = max_messages if max_messages is not None else 10**9
    empty_rounds = 0
    while result.moved < limit and empty_rounds < 2:
        batch = sqs.receive_message(
            QueueUrl=queues.dlq_url,
            MaxNumberOfMessages=min(SQS_MAX_BATCH, limit - result.moved),
            # Long enough to send and delete; a message we fail on comes back after it.
            VisibilityTimeout=60,
            WaitTimeSeconds=1 if empty_rounds else 0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            empty_rounds += 1
            continue
        empty_rounds = 0
        entries = []
        for index, message in enumerate(batch):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        try:
            sent = sqs.send_message_batch(QueueUrl=queues.queue_url, Entries=entries)
        except BaseException:
            release(sqs, queues.dlq_url, batch)  # nothing was sent: leave every one in the DLQ
            raise
        sent_ids = {entry["Id"] for entry in sent.get("Successful", [])}
        result.failed_sends += len(batch) - len(sent_ids)
        if not sent_ids:
            release(sqs, queues.dlq_url, batch)
            break  # the queue takes nothing now: stop rather than spin; everything stays in the DLQ
        done = [message for index, message in enumerate(batch) if str(index) in sent_ids]
        # Only what the queue took leaves the DLQ; unsent ones become visible there again.
        release(sqs, queues.dlq_url, [m for i, m in enumerate(batch) if str(i) not in sent_ids])
        if done:
            deleted = sqs.delete_message_batch(
                QueueUrl=queues.dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            result.failed_deletes += len(deleted.get("Failed", []))
            result.moved += len(done)
            result.message_ids += [m["MessageId"] for m in done]
            progress(len(done))
    return result
