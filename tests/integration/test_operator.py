"""The operator's tools against moto: queue status, DLQ inspect (nothing consumed), DLQ redrive
(nothing lost), and the `orderpipe queue|dlq` commands themselves."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config

from orderpipe_common.tuning import DEFAULT_TUNING
from orderpipe_ops.cli import main
from orderpipe_ops.queues import (
    AlarmThresholds,
    QueuePair,
    inspect_dlq,
    queue_status,
    redrive,
    resolve_queues,
    thresholds_from_alarms,
)
from orderpipe_testkit.sample_orders import make_order, message_body
from tests.fixtures.aws import queue_depth, receive_all


@pytest.fixture
def sqs_client(moto_server):
    """As the CLI builds it: standard retries (an unimplemented call fails fast)."""
    config = Config(retries={"mode": "standard", "max_attempts": 2})
    return boto3.client(
        "sqs", endpoint_url=moto_server.endpoint_url, region_name=moto_server.region, config=config
    )


@pytest.fixture
def queues(order_queues) -> QueuePair:
    return QueuePair(queue_url=order_queues.queue_url, dlq_url=order_queues.dlq_url)


# The thresholds the deployed alarms use (stacks/monitoring.py reads the same tuning).
THRESHOLDS = AlarmThresholds(
    queue_visible_messages=DEFAULT_TUNING.alarm_queue_visible_messages,
    oldest_message_age_seconds=DEFAULT_TUNING.alarm_oldest_message_age_seconds,
    dlq_visible_messages=DEFAULT_TUNING.alarm_dlq_visible_messages,
    source="test",
)


def send(sqs, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        )


def bodies_on(sqs, url: str) -> list[str]:
    return sorted(m["Body"] for m in receive_all(sqs, url))


def test_queues_are_found_by_prefix_and_the_dlq_from_the_redrive_policy(sqs_client, order_queues, aws_name):
    # When the queues are named only by the prefix they were created with
    found = resolve_queues(sqs_client, prefix=aws_name)
    # Then both URLs are found, the DLQ through the queue's redrive policy
    assert found == QueuePair(queue_url=order_queues.queue_url, dlq_url=order_queues.dlq_url)


def test_status_shows_depths_and_the_peeked_age_against_the_alarm_thresholds(sqs_client, queues, moto_server):
    # Given 3 orders on the queue, one of them taken by a consumer, and 2 messages in the DLQ
    send(sqs_client, queues.queue_url, [message_body(make_order(seed)) for seed in range(3)])
    sqs_client.receive_message(QueueUrl=queues.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=300)
    send(sqs_client, queues.dlq_url, ["dead-1", "dead-2"])
    # When the status is read against the local endpoint
    status = queue_status(sqs_client, queues, thresholds=THRESHOLDS, endpoint_url=moto_server.endpoint_url)
    values = {m.name: m for m in status.measures}
    # Then it shows the depths, an age computed from SentTimestamp, and the DLQ alarm
    assert values["queue visible"].value == 2
    assert values["queue in flight"].value == 1
    age = values["queue oldest message age"]
    assert age.value is not None and 0 <= age.value < 60
    assert age.threshold == DEFAULT_TUNING.alarm_oldest_message_age_seconds
    assert values["DLQ visible"].value == 2 and values["DLQ visible"].alarming
    assert [m.name for m in status.alarming] == ["DLQ visible"]
    assert status.age_source.startswith("peek")


def test_status_reads_the_age_from_cloudwatch_when_asked(sqs_client, queues, moto_server):
    # Given a published ApproximateAgeOfOldestMessage of 420 s (over the 300 s threshold)
    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": queues.queue_name}],
                "Timestamp": datetime.now(UTC),
                "Value": 420,
                "Unit": "Seconds",
            }
        ],
    )
    # When the status is read from CloudWatch (as deployed)
    status = queue_status(
        sqs_client, queues, thresholds=THRESHOLDS, age_source="cloudwatch", cloudwatch=cloudwatch
    )
    age = next(m for m in status.measures if m.name == "queue oldest message age")
    # Then the metric's value is shown, in alarm, and the source says CloudWatch
    assert age.value == 420 and age.alarming
    assert "CloudWatch" in status.age_source


def test_thresholds_are_read_from_the_alarms_that_watch_the_queues(sqs_client, queues, moto_server):
    # Given the queues with the alarms the stack defines (created as the local runtime creates them),
    # and an unrelated alarm on another queue's depth
    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    cloudwatch.put_metric_alarm(
        AlarmName="someone-elses-backlog",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": "someone-elses-queue"}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    # When the thresholds are read for these queues
    thresholds = thresholds_from_alarms(cloudwatch, queues)
    # Then each is its own alarm's threshold: the tuning's, not the other queue's
    assert thresholds.queue_visible_messages == DEFAULT_TUNING.alarm_queue_visible_messages
    assert thresholds.oldest_message_age_seconds == DEFAULT_TUNING.alarm_oldest_message_age_seconds
    assert thresholds.dlq_visible_messages == DEFAULT_TUNING.alarm_dlq_visible_messages
    assert "alarms" in thresholds.source


def test_inspect_explains_each_dead_letter_and_consumes_none(sqs_client, queues):
    # Given a readable order and two undecodable messages in the DLQ
    order = make_order(11)
    send(sqs_client, queues.dlq_url, [message_body(order), "not json", json.dumps({"schema_version": 9})])
    # When the DLQ is inspected
    letters = {letter.order_id or letter.body: letter for letter in inspect_dlq(sqs_client, queues.dlq_url)}
    # Then the order is decoded and the others carry their parse error...
    assert set(letters) == {str(order.order_id), "not json", json.dumps({"schema_version": 9})}
    decoded = letters[str(order.order_id)].order
    assert decoded is not None and decoded["customer_id"] == order.customer_id
    assert letters["not json"].reason.startswith("unreadable envelope")
    assert "schema_version" in letters[json.dumps({"schema_version": 9})].reason
    # ...and all three are still there, visible right away
    assert queue_depth(sqs_client, queues.dlq_url)["ApproximateNumberOfMessages"] == 3


def test_redrive_moves_every_message_back_falling_back_from_the_move_task(sqs_client, queues):
    # Given 23 messages in the DLQ
    bodies = [message_body(make_order(seed)) for seed in range(23)]
    send(sqs_client, queues.dlq_url, bodies)
    # When they are redriven (moto has no StartMessageMoveTask)
    result = redrive(sqs_client, queues)
    # Then every one is on the queue, exactly once, and the DLQ is empty
    assert result.method == "send-then-delete"
    assert "StartMessageMoveTask" in result.fallback_reason
    assert result.moved == 23
    assert bodies_on(sqs_client, queues.queue_url) == sorted(bodies)
    assert queue_depth(sqs_client, queues.dlq_url) == {
        "ApproximateNumberOfMessages": 0,
        "ApproximateNumberOfMessagesNotVisible": 0,
    }


def test_redrive_respects_max_messages_and_dry_run_moves_nothing(sqs_client, queues):
    # Given 12 messages in the DLQ
    send(sqs_client, queues.dlq_url, [f"m{i}" for i in range(12)])
    # When a dry run counts them, then 5 are redriven
    dry = redrive(sqs_client, queues, dry_run=True)
    assert dry.moved == 12
    assert queue_depth(sqs_client, queues.dlq_url)["ApproximateNumberOfMessages"] == 12
    limited = redrive(sqs_client, queues, max_messages=5)
    # Then exactly 5 moved and 7 wait in the DLQ
    assert limited.moved == 5
    assert queue_depth(sqs_client, queues.queue_url)["ApproximateNumberOfMessages"] == 5
    assert queue_depth(sqs_client, queues.dlq_url)["ApproximateNumberOfMessages"] == 7


def test_redrive_to_a_missing_queue_leaves_every_message_in_the_dlq(sqs_client, queues):
    # Given messages in the DLQ and a destination queue that is gone
    send(sqs_client, queues.dlq_url, [f"keep-{i}" for i in range(4)])
    sqs_client.delete_queue(QueueUrl=queues.queue_url)
    # When a redrive is attempted, it fails...
    with pytest.raises(Exception, match=r"NonExistentQueue|does not exist"):
        redrive(sqs_client, queues)
    # ...and nothing left the DLQ: all four are visible there again at once
    assert bodies_on(sqs_client, queues.dlq_url) == [f"keep-{i}" for i in range(4)]


def test_the_commands_print_status_inspection_and_redrive(sqs_client, queues, aws_name, capsys):
    # Given one poison message in the DLQ of queues with prefix aws_name
    send(sqs_client, queues.dlq_url, ["{broken"])
    # When the operator runs the three commands (AWS_ENDPOINT_URL points at moto)
    status_code = main(["queue", "status", "--prefix", aws_name])
    status_out = capsys.readouterr().out
    inspect_code = main(["dlq", "inspect", "--prefix", aws_name])
    inspect_out = capsys.readouterr().out
    redrive_code = main(["dlq", "redrive", "--prefix", aws_name, "--no-progress"])
    redrive_out = capsys.readouterr().out
    # Then: status alarms on the DLQ (exit 3), inspect names the parse error, redrive moves it
    assert status_code == 3
    assert "DLQ visible" in status_out and "ALARM" in status_out and "age source: peek" in status_out
    assert inspect_code == 0 and "unreadable envelope" in inspect_out and "{broken" in inspect_out
    assert redrive_code == 0 and "1 message(s) moved via send-then-delete" in redrive_out
    assert bodies_on(sqs_client, queues.queue_url) == ["{broken"]


def test_unknown_queue_is_a_clear_error(moto_server, capsys):
    # When the prefix names no queue
    code = main(["queue", "status", "--prefix", "no-such-pipeline"])
    # Then the command says so and exits 2
    assert code == 2
    assert "no queue named 'no-such-pipeline-orders'" in capsys.readouterr().err


def test_status_reports_the_outage_budget_read_from_the_live_queues(sqs_client, queues, aws_name, capsys):
    # Given queues created with the default tuning (21 receives, 180 s visibility, 4 d / 14 d retention)
    # When the status is read, as data and as the command prints it
    status = queue_status(sqs_client, queues, thresholds=THRESHOLDS, endpoint_url="http://127.0.0.1:1")
    main(["queue", "status", "--prefix", aws_name])
    out = capsys.readouterr().out
    # Then the budget is the queues' own: an hour of Cassandra outage before orders reach the DLQ
    assert status.budget is not None
    assert status.budget.outage_budget_seconds == DEFAULT_TUNING.cassandra_outage_budget_seconds == 3600
    assert status.budget_problems == []
    assert "Cassandra outage survived before orders reach the DLQ: 1 h" in out
    assert "retention: queue 4 d, DLQ 14 d" in out
    assert "warning" not in out


def test_status_warns_when_the_queue_outlives_its_dlq(sqs_client, queues, aws_name, capsys):
    # Given a queue that keeps messages as long as its DLQ (someone changed it by hand)
    sqs_client.set_queue_attributes(
        QueueUrl=queues.queue_url, Attributes={"MessageRetentionPeriod": str(14 * 86_400)}
    )
    # When the command prints the status
    main(["queue", "status", "--prefix", aws_name, "--json"])
    report = json.loads(capsys.readouterr().out)
    # Then the budget says so
    assert report["budget"]["queue_retention_seconds"] == report["budget"]["dlq_retention_seconds"]
    assert any("time in the queue comes off its time in the DLQ" in p for p in report["budget_problems"])
