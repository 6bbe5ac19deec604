"""Alarms (to an SNS topic, optionally e-mailed) and one dashboard with all of them.

Thresholds come from the shared PipelineTuning.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from orderpipe_common.tuning import PipelineTuning

_ONE_MINUTE = cdk.Duration.minutes(1)
_FIVE_MINUTES = cdk.Duration.minutes(5)


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        tuning: PipelineTuning,
        queue: sqs.IQueue,
        dlq: sqs.IQueue,
        writer: lambda_.IFunction,
        reader: lambda_.IFunction,
        ingest: lambda_.IFunction,
        authorizer: lambda_.IFunction | None,
        api: apigw.RestApi,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "AlarmTopic", display_name="orderpipe alarms", enforce_ssl=True)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: list[cloudwatch.Alarm] = []

        queue_visible = queue.metric_approximate_number_of_messages_visible(
            period=_ONE_MINUTE, statistic="Maximum"
        )
        oldest_age = queue.metric_approximate_age_of_oldest_message(period=_ONE_MINUTE, statistic="Maximum")
        dlq_visible = dlq.metric_approximate_number_of_messages_visible(
            period=_ONE_MINUTE, statistic="Maximum"
        )
        writer_errors = writer.metric_errors(period=_ONE_MINUTE, statistic="Sum")
        writer_throttles = writer.metric_throttles(period=_ONE_MINUTE, statistic="Sum")
        reader_p99 = reader.metric_duration(period=_FIVE_MINUTES, statistic="p99")
        # The stage's metrics: dimensions ApiName (unique per stack) and Stage.
        stage = api.deployment_stage
        api_requests = stage.metric_count(period=_FIVE_MINUTES, statistic="Sum")
        api_5xx = stage.metric_server_error(period=_FIVE_MINUTES, statistic="Sum")
        api_5xx_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"errors": api_5xx, "requests": api_requests},
            label="API 5XX rate (%)",
            period=_FIVE_MINUTES,
        )

        self._alarm(
            "QueueBacklog",
            queue_visible,
            threshold=tuning.alarm_queue_visible_messages,
            evaluation_periods=5,
            description="Orders are piling up in the queue: the writer is not keeping up or Cassandra is down.",
        )
        self._alarm(
            "OldestMessageAge",
            oldest_age,
            threshold=tuning.alarm_oldest_message_age_seconds,
            evaluation_periods=3,
            description="The oldest queued order waits too long: accepted orders are not being written.",
        )
        self._alarm(
            "DeadLetters",
            dlq_visible,
            threshold=tuning.alarm_dlq_visible_messages,
            evaluation_periods=1,
            description="Orders reached the dead-letter queue: inspect and redrive them.",
        )
        self._alarm(
            "WriterErrors",
            writer_errors,
            threshold=0,
            evaluation_periods=3,
            description="Writer invocations fail (not single records, whole invocations).",
        )
        self._alarm(
            "WriterThrottles",
            writer_throttles,
            threshold=0,
            evaluation_periods=3,
            description="The writer is throttled: account concurrency is exhausted.",
        )
        self._alarm(
            "Api5xxRate",
            api_5xx_rate,
            threshold=tuning.alarm_api_5xx_rate_percent,
            evaluation_periods=1,
            description="The API answers 5XX to more than the allowed share of requests.",
        )
        if authorizer is not None:
            # Every authenticated request goes through it: when it fails, API Gateway answers 503
            # to every producer (counted in the 5XX rate too, but this names the cause).
            self._alarm(
                "AuthorizerErrors",
                authorizer.metric_errors(period=_ONE_MINUTE, statistic="Sum"),
                threshold=0,
                evaluation_periods=3,
                description="The authorizer fails: producers are answered 503 instead of being served.",
            )
        self._alarm(
            "ReaderLatency",
            reader_p99,
            threshold=tuning.alarm_reader_p99_latency_ms,
            evaluation_periods=3,
            description="GET /orders/{id} is slow (p99 of the reader's duration).",
        )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(3))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Queue: visible messages", left=[queue_visible], width=8),
            cloudwatch.GraphWidget(title="Queue: age of oldest message (s)", left=[oldest_age], width=8),
            cloudwatch.GraphWidget(title="DLQ: visible messages", left=[dlq_visible], width=8),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Writer: errors and throttles", left=[writer_errors, writer_throttles], width=8
            ),
            cloudwatch.GraphWidget(
                title="Writer and ingest: duration p99 (ms)",
                left=[
                    writer.metric_duration(period=_FIVE_MINUTES, statistic="p99"),
                    ingest.metric_duration(period=_FIVE_MINUTES, statistic="p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Reader: duration p99 (ms)", left=[reader_p99], width=8),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="API: requests", left=[api_requests], width=8),
            cloudwatch.GraphWidget(title="API: 5XX rate (%)", left=[api_5xx_rate], width=8),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=8),
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        evaluation_periods: int,
        description: str,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        return alarm
