"""The schema custom resource: runs the schema function on deploy and whenever the migrations change."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct, IDependable

from stacks.bundling import FUNCTIONS_DIR, tree_hash
from stacks.nag import acknowledge

MIGRATIONS_DIR = FUNCTIONS_DIR / "schema" / "orderpipe_schema" / "migrations"


def migrations_hash() -> str:
    """Content hash of the migrations folder: a new or edited .cql file changes it, and so updates the resource."""
    return tree_hash(MIGRATIONS_DIR)


class SchemaMigrations(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        keyspace: str,
        network_dependencies: Sequence[IDependable],
    ) -> None:
        super().__init__(scope, construct_id)
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=function,
            log_group=logs.LogGroup(
                self,
                "ProviderLogs",
                retention=logs.RetentionDays.ONE_MONTH,
                removal_policy=cdk.RemovalPolicy.DESTROY,
            ),
        )
        self.resource = cdk.CustomResource(
            self,
            "Migrations",
            service_token=self.provider.service_token,
            resource_type="Custom::OrderpipeSchema",
            properties={"Keyspace": keyspace, "MigrationsHash": migrations_hash()},
        )
        # It connects to Cassandra (and reads the secret) during the deploy: every route, endpoint
        # and security-group rule on that path must exist first (DependsOn).
        for dependency in network_dependencies:
            self.resource.node.add_dependency(dependency)
        acknowledge(
            self.provider,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "The Provider framework's own function logs through the AWS-maintained minimal logging policy.",
        )
        stack = cdk.Stack.of(self)
        function_logical_id = stack.resolve(stack.get_logical_id(function.node.default_child))  # type: ignore[arg-type]
        acknowledge(
            self.provider,
            f"AwsSolutions-IAM5[Resource::<{function_logical_id}.Arn>:*]",
            "The Provider framework may invoke any version or alias of the schema function (ARN:*), and only it.",
        )
