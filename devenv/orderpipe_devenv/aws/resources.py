"""Create the pipeline's AWS resources (SQS queues, DynamoDB tables), idempotently.

Everything follows `orderpipe_common.tuning.PipelineTuning` and `orderpipe_common.tables`, the same
sources the CDK stack reads, so moto (tests, local runtime) holds what the deployment holds. Each
function works against whatever endpoint boto3 is configured for (`AWS_ENDPOINT_URL`) and can be
called again on existing resources: it converges them and returns the same answer.

    resources = create_pipeline_resources(prefix="orderpipe-local")
    resources.queues.queue_url, resources.idempotency_table.name, resources.cache_table.name
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from orderpipe_common.tables import (
    CACHE_EXPIRY_ATTRIBUTE,
    CACHE_PARTITION_KEY,
    IDEMPOTENCY_EXPIRY_ATTRIBUTE,
    IDEMPOTENCY_PARTITION_KEY,
)
from orderpipe_common.tuning import DEFAULT_TUNING, PipelineTuning
from orderpipe_ingest.settings import IngestSettings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.client import CloudWatchClient
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

DAY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class OrderQueues:
    queue_name: str
    queue_url: str
    queue_arn: str
    dlq_name: str
    dlq_url: str
    dlq_arn: str


@dataclass(frozen=True)
class Table:
    name: str
    arn: str
    partition_key: str
    expiry_attribute: str


@dataclass(frozen=True)
class PipelineResources:
    queues: OrderQueues
    idempotency_table: Table
    cache_table: Table

    # Flat shortcuts (what most callers need).
    @property
    def queue_url(self) -> str:
        return self.queues.queue_url

    @property
    def queue_arn(self) -> str:
        return self.queues.queue_arn

    @property
    def dlq_url(self) -> str:
        return self.queues.dlq_url

    @property
    def dlq_arn(self) -> str:
        return self.queues.dlq_arn

    @property
    def idempotency_table_name(self) -> str:
        return self.idempotency_table.name

    @property
    def cache_table_name(self) -> str:
        return self.cache_table.name

    def ingest_environment(self) -> dict[str, str]:
        """The ingest function's environment variables for these resources."""
        return IngestSettings.environment(
            orders_queue_url=self.queues.queue_url, idempotency_table_name=self.idempotency_table.name
        )


def _queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _ensure_queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> str:
    try:
        return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    except ClientError as error:
        # The queue exists with other attributes: converge them.
        if error.response["Error"]["Code"] not in {"QueueAlreadyExists", "QueueNameExists"}:
            raise
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    return url


def create_order_queues(
    name: str = "orderpipe-orders",
    *,
    tuning: PipelineTuning = DEFAULT_TUNING,
    sqs: SQSClient | None = None,
    cloudwatch: CloudWatchClient | None = None,
) -> OrderQueues:
    """The orders queue and its dead-letter queue `<name>-dlq`, with the redrive policy from `tuning`.

    With a CloudWatch client, also the queue alarms the stack's Monitoring defines (same metrics and
    thresholds), so the operator's tools read their thresholds the same way locally and deployed.
    """
    sqs = sqs or boto3.client("sqs")
    dlq_name = f"{name}-dlq"
    dlq_url = _ensure_queue(
        sqs, dlq_name, {"MessageRetentionPeriod": str(tuning.dlq_retention_days * DAY_SECONDS)}
    )
    dlq_arn = _queue_arn(sqs, dlq_url)
    queue_url = _ensure_queue(
        sqs,
        name,
        {
            "VisibilityTimeout": str(tuning.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(tuning.queue_retention_days * DAY_SECONDS),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(tuning.max_receive_count)}
            ),
        },
    )
    queues = OrderQueues(
        queue_name=name,
        queue_url=queue_url,
        queue_arn=_queue_arn(sqs, queue_url),
        dlq_name=dlq_name,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
    )
    if cloudwatch is not None:
        create_queue_alarms(queues, tuning=tuning, cloudwatch=cloudwatch)
    return queues


def create_queue_alarms(queues: OrderQueues, *, tuning: PipelineTuning, cloudwatch: CloudWatchClient) -> None:
    """The three queue alarms of stacks/monitoring.py: backlog, oldest message age, dead letters."""
    alarms = (
        (
            queues.queue_name,
            "backlog",
            "ApproximateNumberOfMessagesVisible",
            tuning.alarm_queue_visible_messages,
        ),
        (
            queues.queue_name,
            "oldest-message-age",
            "ApproximateAgeOfOldestMessage",
            tuning.alarm_oldest_message_age_seconds,
        ),
        (
            queues.dlq_name,
            "dead-letters",
            "ApproximateNumberOfMessagesVisible",
            tuning.alarm_dlq_visible_messages,
        ),
    )
    for queue_name, what, metric, threshold in alarms:
        cloudwatch.put_metric_alarm(
            AlarmName=f"{queue_name}-{what}",
            Namespace="AWS/SQS",
            MetricName=metric,
            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=float(threshold),
            ComparisonOperator="GreaterThanThreshold",
        )


def _ensure_table(dynamodb: DynamoDBClient, name: str, partition_key: str, expiry_attribute: str) -> Table:
    try:
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": partition_key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": partition_key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    description = dynamodb.describe_table(TableName=name)["Table"]
    keys = {key["AttributeName"] for key in description["KeySchema"]}
    if keys != {partition_key}:
        raise RuntimeError(f"table {name} exists with key {sorted(keys)}, expected [{partition_key!r}]")
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}:
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": expiry_attribute},
        )
    return Table(
        name=name,
        arn=description["TableArn"],
        partition_key=partition_key,
        expiry_attribute=expiry_attribute,
    )


def create_idempotency_table(
    name: str = "orderpipe-idempotency", *, dynamodb: DynamoDBClient | None = None
) -> Table:
    """The ingest's Idempotency-Key store (on demand, TTL on the expiry attribute)."""
    return _ensure_table(
        dynamodb or boto3.client("dynamodb"), name, IDEMPOTENCY_PARTITION_KEY, IDEMPOTENCY_EXPIRY_ATTRIBUTE
    )


def create_cache_table(
    name: str = "orderpipe-order-cache", *, dynamodb: DynamoDBClient | None = None
) -> Table:
    """The reader's order cache (on demand, TTL on the expiry attribute)."""
    return _ensure_table(
        dynamodb or boto3.client("dynamodb"), name, CACHE_PARTITION_KEY, CACHE_EXPIRY_ATTRIBUTE
    )


def create_pipeline_resources(
    prefix: str = "orderpipe",
    *,
    tuning: PipelineTuning = DEFAULT_TUNING,
    sqs: SQSClient | None = None,
    dynamodb: DynamoDBClient | None = None,
    cloudwatch: CloudWatchClient | None = None,
) -> PipelineResources:
    """Every queue (with its alarms) and table of the pipeline: `<prefix>-orders`, `<prefix>-idempotency`, ..."""
    dynamodb = dynamodb or boto3.client("dynamodb")
    return PipelineResources(
        queues=create_order_queues(f"{prefix}-orders", tuning=tuning, sqs=sqs, cloudwatch=cloudwatch),
        idempotency_table=create_idempotency_table(f"{prefix}-idempotency", dynamodb=dynamodb),
        cache_table=create_cache_table(f"{prefix}-order-cache", dynamodb=dynamodb),
    )


def delete_order_queues(queues: OrderQueues, *, sqs: SQSClient | None = None) -> None:
    sqs = sqs or boto3.client("sqs")
    for url in (queues.queue_url, queues.dlq_url):
        try:
            sqs.delete_queue(QueueUrl=url)
        except ClientError as error:
            if "NonExistentQueue" not in error.response["Error"]["Code"]:
                raise


def delete_table(table: Table, *, dynamodb: DynamoDBClient | None = None) -> None:
    try:
        (dynamodb or boto3.client("dynamodb")).delete_table(TableName=table.name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise


def delete_pipeline_resources(
    resources: PipelineResources, *, sqs: SQSClient | None = None, dynamodb: DynamoDBClient | None = None
) -> None:
    delete_order_queues(resources.queues, sqs=sqs)
    for table in (resources.idempotency_table, resources.cache_table):
        delete_table(table, dynamodb=dynamodb)
