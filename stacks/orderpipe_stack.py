"""The one stack: composes the constructs, one per concern, and publishes the outputs."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from stacks.api import OrdersApi
from stacks.config import OrderPipeConfig
from stacks.functions import Functions
from stacks.identity import ProducerIdentity
from stacks.monitoring import Monitoring
from stacks.network import Network
from stacks.queue import OrderQueue
from stacks.schema import SchemaMigrations
from stacks.tables import Tables


class OrderPipeStack(cdk.Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: OrderPipeConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        # Astra DB is reached over the internet (mutual TLS from its bundle, plus a token): its
        # functions run outside any VPC, so there is no VPC, NAT gateway or endpoint to pay for.
        self.network = (
            Network(
                self,
                "Network",
                cassandra=config.cassandra,
                path=config.network_path,
                existing_vpc=config.existing_vpc,
                create_endpoints=config.create_vpc_endpoints,
                new_vpc_cidr=config.new_vpc_cidr,
                max_azs=config.max_azs,
            )
            if config.cassandra.in_vpc
            else None
        )
        self.queue = OrderQueue(self, "Orders", tuning=config.tuning)
        self.tables = Tables(self, "Tables")
        self.identity = ProducerIdentity(self, "Identity", auth=config.auth)
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            network=self.network,
            queue=self.queue,
            tables=self.tables,
            identity=self.identity,
        )
        self.api = OrdersApi(
            self,
            "Api",
            settings=config.api,
            auth=config.auth,
            cloudwatch_role=config.api_cloudwatch_role,
            ingest=self.functions.ingest_entry,
            reader=self.functions.reader_entry,
            authorizer=self.functions.authorizer,
            authorizer_cache_ttl_seconds=config.tuning.authorizer_cache_ttl_seconds,
        )
        self.schema = SchemaMigrations(
            self,
            "Schema",
            function=self.functions.schema,
            keyspace=config.cassandra.keyspace,
            network_dependencies=self.network.schema_dependencies if self.network else [],
        )
        # New writer/reader code goes live only after its migration ran (CloudFormation orders
        # resources by DependsOn on create and update alike).
        for function in (self.functions.writer, self.functions.reader):
            function.node.add_dependency(self.schema.resource)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            tuning=config.tuning,
            queue=self.queue.queue,
            dlq=self.queue.dlq,
            writer=self.functions.writer,
            reader=self.functions.reader,
            ingest=self.functions.ingest,
            authorizer=self.functions.authorizer,
            api=self.api.api,
            alarm_email=config.alarm_email,
        )

        cdk.CfnOutput(self, "ApiUrl", value=self.api.api.url, description="Base URL of the orders API")
        cdk.CfnOutput(self, "CassandraBackend", value=config.cassandra.backend)
        # What `orderpipe producers` and producers need (ops/orderpipe_ops/producers.py reads these).
        cdk.CfnOutput(self, "AuthMode", value=config.auth.mode, description="jwt or iam")
        cdk.CfnOutput(
            self,
            "ApiArn",
            value=self.format_arn(service="execute-api", resource=self.api.api.rest_api_id),
            description="Prefix of the execute-api ARNs an iam-mode producer's policy names",
        )
        cdk.CfnOutput(self, "UsagePlanId", value=self.api.plan.usage_plan_id)
        cdk.CfnOutput(self, "ProducersTableName", value=self.identity.producers.table_name)
        if self.identity.user_pool is not None and self.identity.token_url is not None:
            cdk.CfnOutput(self, "UserPoolId", value=self.identity.user_pool.user_pool_id)
            cdk.CfnOutput(
                self, "TokenUrl", value=self.identity.token_url, description="OAuth 2.0 token endpoint"
            )
        cdk.CfnOutput(self, "QueueUrl", value=self.queue.queue.queue_url)
        cdk.CfnOutput(self, "DeadLetterQueueUrl", value=self.queue.dlq.queue_url)
        cdk.CfnOutput(self, "CacheTableName", value=self.tables.cache.table_name)
        cdk.CfnOutput(self, "IdempotencyTableName", value=self.tables.idempotency.table_name)
        cdk.CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
