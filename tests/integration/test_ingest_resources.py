"""aws_resources (used by these tests and the local runtime) builds what the tuning says, idempotently."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from orderpipe_common.tables import IDEMPOTENCY_EXPIRY_ATTRIBUTE, IDEMPOTENCY_PARTITION_KEY
from orderpipe_common.tuning import PipelineTuning
from orderpipe_devenv.aws.resources import create_order_queues, create_pipeline_resources

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient


def test_queues_follow_the_tuning_and_creating_again_converges(sqs_client: SQSClient, aws_name: str) -> None:
    tuning = PipelineTuning(max_receive_count=3, writer_timeout_seconds=20, queue_retention_days=4)
    first = create_order_queues(aws_name, tuning=tuning, sqs=sqs_client)
    attributes = sqs_client.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == "120"
    assert attributes["MessageRetentionPeriod"] == str(4 * 24 * 3600)
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == first.dlq_arn
    assert int(redrive["maxReceiveCount"]) == 3
    # Created again with another tuning: same queues, attributes converged
    again = create_order_queues(aws_name, tuning=PipelineTuning(max_receive_count=7), sqs=sqs_client)
    assert again == first
    attributes = sqs_client.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"]) == 7


def test_tables_are_on_demand_with_ttl_and_creating_again_is_harmless(
    sqs_client: SQSClient, dynamodb_client: DynamoDBClient, aws_name: str
) -> None:
    resources = create_pipeline_resources(aws_name, sqs=sqs_client, dynamodb=dynamodb_client)
    assert create_pipeline_resources(aws_name, sqs=sqs_client, dynamodb=dynamodb_client) == resources
    table = dynamodb_client.describe_table(TableName=resources.idempotency_table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": IDEMPOTENCY_PARTITION_KEY, "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb_client.describe_time_to_live(TableName=resources.idempotency_table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == IDEMPOTENCY_EXPIRY_ATTRIBUTE
    assert resources.ingest_environment() == {
        "ORDERS_QUEUE_URL": resources.queue_url,
        "IDEMPOTENCY_TABLE_NAME": resources.idempotency_table_name,
    }
