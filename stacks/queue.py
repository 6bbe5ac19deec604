"""The orders queue and its dead-letter queue."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from orderpipe_common.tuning import PipelineTuning


class OrderQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, tuning: PipelineTuning) -> None:
        super().__init__(scope, construct_id)
        self.dlq = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(tuning.dlq_retention_days),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # A batch Lambda retries must not be handed to another poller while still in flight.
            visibility_timeout=cdk.Duration.seconds(tuning.visibility_timeout_seconds),
            retention_period=cdk.Duration.days(tuning.queue_retention_days),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=tuning.max_receive_count),
        )
