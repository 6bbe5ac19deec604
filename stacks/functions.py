"""The Lambda functions (ingest, writer, reader, schema, and in jwt mode the authorizer), their settings (environment), permissions and the SQS event source.

Runtime: python3.12 on x86_64. 3.12 is the newest Python that every pinned dependency publishes
wheels for and that this project's dev environment, tests and local runtime use, so the code that is
tested is the code that runs; the bundles are built and import-tested with that same interpreter.
x86_64 because the bundle import test runs on this x86_64 machine (an arm64 bundle could not be
loaded here); switching to arm64 (~20% cheaper per GB-s) is a one-line change plus a
`--platform manylinux2014_aarch64` build, once the import test can run on arm64.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from orderpipe_authorizer.settings import AuthorizerSettings
from orderpipe_common import catalog
from orderpipe_common.cassandra_backends import keyspaces_endpoint
from orderpipe_common.settings import PowertoolsSettings
from orderpipe_ingest.settings import IngestSettings
from orderpipe_reader.settings import ReaderSettings
from orderpipe_schema.migrations import created_tables
from orderpipe_schema.settings import SchemaSettings
from orderpipe_writer.settings import WriterSettings
from stacks.bundling import function_code
from stacks.config import OrderPipeConfig
from stacks.identity import ProducerIdentity
from stacks.nag import acknowledge
from stacks.network import Network
from stacks.queue import OrderQueue
from stacks.tables import Tables

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """Memory and timeout per function; the timeouts of ingest, writer and reader come from the shared tuning."""

    memory_mb: int
    timeout_seconds: int


INGEST_MEMORY_MB = 512
READER_MEMORY_MB = 512
WRITER_MEMORY_MB = 1024
SCHEMA = FunctionSpec(memory_mb=256, timeout_seconds=300)
# API Gateway waits at most 10 s for an authorizer; a decision is a JWKS look-up (cached) + one GetItem.
AUTHORIZER = FunctionSpec(memory_mb=256, timeout_seconds=5)
# The cluster's CA (orderpipe:cassandraTlsCaFile) is shipped at the root of the Cassandra functions'
# bundles; Lambda unpacks a bundle into LAMBDA_TASK_ROOT, which is /var/task.
CA_BUNDLE_NAME = "cassandra-ca.pem"
CA_PATH_IN_LAMBDA = f"/var/task/{CA_BUNDLE_NAME}"
# The functions SnapStart applies to when orderpipe:snapStart is on.
SNAP_START_FUNCTIONS = ("ingest", "reader", "writer")
# How cdk-nag names the Keyspaces system-keyspace ARN (tokens as <AWS::...>) in its IAM5 finding.
KEYSPACES_SYSTEM_ARN_NAG = "arn:<AWS::Partition>:cassandra:<AWS::Region>:<AWS::AccountId>:/keyspace/system*"


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: OrderPipeConfig,
        network: Network | None,
        queue: OrderQueue,
        tables: Tables,
        identity: ProducerIdentity,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._ca_files: dict[str, Path] = {}
        tuning = config.tuning
        cassandra = config.cassandra

        self.ingest = self._function(
            "ingest",
            spec=FunctionSpec(memory_mb=INGEST_MEMORY_MB, timeout_seconds=tuning.ingest_timeout_seconds),
            environment=IngestSettings.environment(
                orders_queue_url=queue.queue.queue_url,
                idempotency_table_name=tables.idempotency.table_name,
                idempotency_expires_after_seconds=config.idempotency_expires_after_seconds,
            ),
        )
        queue.queue.grant_send_messages(self.ingest)
        # Powertools' DynamoDB persistence layer: get, put (conditional), update, delete.
        tables.idempotency.grant(
            self.ingest, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
        )

        cassandra_values = self._cassandra_values()
        self.secrets: list[secretsmanager.ISecret] = [
            secretsmanager.Secret.from_secret_complete_arn(self, f"CassandraSecret{index}", arn)
            for index, arn in enumerate(cassandra.secret_arns)
        ]

        self.writer = self._function(
            "writer",
            spec=FunctionSpec(memory_mb=WRITER_MEMORY_MB, timeout_seconds=tuning.writer_timeout_seconds),
            environment=WriterSettings.environment(**cassandra_values),
            network=network,
        )
        self.writer_entry = self._entry_point(self.writer)
        self.writer_entry.add_event_source(
            sources.SqsEventSource(
                queue.queue,
                batch_size=tuning.writer_batch_size,
                max_batching_window=cdk.Duration.seconds(tuning.writer_batching_window_seconds),
                report_batch_item_failures=True,
                max_concurrency=tuning.writer_max_concurrency,
            )
        )

        self.reader = self._function(
            "reader",
            spec=FunctionSpec(memory_mb=READER_MEMORY_MB, timeout_seconds=tuning.reader_timeout_seconds),
            # Bounded: each environment opens its own control connection and pools to the cluster.
            reserved_concurrency=config.reader_reserved_concurrency,
            environment=ReaderSettings.environment(
                **cassandra_values,
                cache_table_name=tables.cache.table_name,
                cache_ttl_seconds=tuning.cache_ttl_seconds,
                legacy_producer=config.auth.legacy_producer,
                read_all_principals=list(config.auth.read_all_principals) or None,
            ),
            network=network,
            extra_security_groups=[network.dynamodb_clients] if network is not None else None,
        )
        tables.cache.grant(self.reader, "dynamodb:GetItem", "dynamodb:PutItem")
        self.ingest_entry = self._entry_point(self.ingest)
        self.reader_entry = self._entry_point(self.reader)

        self.schema = self._function(
            "schema",
            spec=SCHEMA,
            environment=SchemaSettings.environment(
                **cassandra_values,
                # Self-managed only: Keyspaces takes its one strategy by default, Astra none.
                cassandra_replication=(
                    cdk.Stack.of(self).to_json_string(dict(cassandra.replication))
                    if cassandra.backend == "self-managed"
                    else None
                ),
            ),
            network=network,
        )

        # jwt mode: the REQUEST authorizer, outside the VPC (it fetches the issuer's keys over HTTPS).
        self.authorizer: lambda_.Function | None = None
        if config.auth.mode == "jwt":
            assert identity.issuer is not None
            auth = config.auth
            self.authorizer = self._function(
                "authorizer",
                spec=AUTHORIZER,
                environment=AuthorizerSettings.environment(
                    auth_issuer=identity.issuer,
                    auth_audience=auth.audience,
                    auth_jwks_url=identity.jwks_url,
                    auth_scope_claim=auth.scope_claim,
                    auth_principal_claim=auth.principal_claim,
                    producers_table_name=identity.producers.table_name,
                ),
            )
            identity.producers.grant(self.authorizer, "dynamodb:GetItem")

        if self._keyspaces_by_role:
            self._grant_keyspaces()
        for function in (self.writer, self.reader, self.schema):
            for secret in self.secrets:
                secret.grant_read(function)
            if cassandra.secret_kms_key_arn:
                # A customer-managed key: Secrets Manager decrypts with the caller's permission. The
                # key is imported (its key policy is not ours), so the grant goes on the function's
                # role, usable only through Secrets Manager in this region (kms:ViaService).
                iam.Grant.add_to_principal(
                    grantee=function,
                    actions=["kms:Decrypt"],
                    resource_arns=[cassandra.secret_kms_key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"secretsmanager.{cdk.Stack.of(self).region}.amazonaws.com"
                        }
                    },
                )

    def _entry_point(self, function: lambda_.Function) -> lambda_.IFunction:
        """What the API and the event source invoke: the function, or with SnapStart its alias `live`
        on the version this deployment published (SnapStart applies to published versions only)."""
        if not self._config.snap_start:
            return function
        return lambda_.Alias(
            self, f"{function.node.id}Live", alias_name="live", version=function.current_version
        )

    def _function(
        self,
        name: str,
        *,
        spec: FunctionSpec,
        environment: dict[str, str],
        network: Network | None = None,
        extra_security_groups: list[ec2.ISecurityGroup] | None = None,
        reserved_concurrency: int | None = None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{name.capitalize()}Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        vpc_props: dict[str, object] = {}
        if network is not None:
            vpc_props = {
                "vpc": network.vpc,
                "vpc_subnets": network.subnets,
                "security_groups": [network.cassandra_clients, *(extra_security_groups or [])],
                "allow_public_subnet": False,
            }
        function = lambda_.Function(
            self,
            name.capitalize(),
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=catalog.handler_path(name),
            # The Cassandra functions (those in the VPC) carry the cluster's CA, when one is given.
            code=function_code(name, extra_files=self._ca_files if network is not None else None),
            reserved_concurrent_executions=reserved_concurrency,
            memory_size=spec.memory_mb,
            timeout=cdk.Duration.seconds(spec.timeout_seconds),
            # The platform's tracing: invocation segments linked to API Gateway's and, through the
            # messages' AWSTraceHeader, ingest -> writer; no SDK in the bundle (docs/benchmarks.md).
            tracing=lambda_.Tracing.ACTIVE,
            # SnapStart (orderpipe:snapStart) for the request path; not for the schema custom resource,
            # which runs once per deployment. None of the functions uses what SnapStart excludes
            # (provisioned concurrency, EFS, ephemeral storage above 512 MB).
            snap_start=(
                lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS
                if self._config.snap_start and name in SNAP_START_FUNCTIONS
                else None
            ),
            log_group=log_group,
            environment={
                **PowertoolsSettings.environment(
                    powertools_service_name=name,
                    powertools_metrics_namespace=PowertoolsSettings.default("powertools_metrics_namespace"),
                    powertools_log_level=self._config.log_level,
                ),
                **environment,
            },
            **vpc_props,  # type: ignore[arg-type]
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "python3.12 on purpose, not the newest Python runtime: it is the version every pinned dependency "
            "ships wheels for and the one the tests, the local runtime and the bundle import test use.",
        )
        acknowledge(
            function,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "AWS-maintained minimal logging policy (CreateLogStream/PutLogEvents); no wildcard actions.",
        )
        if network is not None:
            acknowledge(
                function,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
                "AWS-maintained policy for the function's VPC network interfaces; the EC2 ENI actions it "
                "lists support no resource-level permissions.",
            )
        keyspaces = self._keyspaces_by_role and network is not None
        acknowledge(
            function,
            "AwsSolutions-IAM5[Resource::*]",
            "Lambda's active tracing (the platform records each invocation; no tracing SDK is bundled) "
            "needs xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level "
            "permissions."
            + (
                " With Amazon Keyspaces also ec2:DescribeNetworkInterfaces and ec2:DescribeVpcEndpoints "
                "(read-only, no resource-level permissions): Keyspaces calls them with the connecting role "
                "to list one system.peers entry per AZ of the interface endpoint, so the driver spreads "
                "connections over the endpoint's AZs instead of one."
                if keyspaces
                else ""
            )
            + " Every other statement is scoped by a grant to named resources.",
        )
        if keyspaces:
            acknowledge(
                function,
                f"AwsSolutions-IAM5[Resource::{KEYSPACES_SYSTEM_ARN_NAG}]",
                "cassandra:Select on Amazon Keyspaces' system keyspaces (system, system_schema, "
                "system_schema_mcs...), which the driver reads on connect (peers, schema metadata) and "
                "the schema function polls; they hold metadata only, no orders.",
            )
        return function

    @property
    def _keyspaces_by_role(self) -> bool:
        """Amazon Keyspaces authorizes the functions' roles (SigV4). With service-specific credentials
        it authorizes the IAM user they belong to instead: that user holds the permissions (docs/deploy.md)."""
        cassandra = self._config.cassandra
        return cassandra.backend == "keyspaces" and cassandra.keyspaces_auth == "sigv4"

    def _cassandra_values(self) -> dict[str, Any]:
        """CassandraSettings' fields for the writer, reader and schema functions, per backend (None
        leaves a variable out, so its default applies)."""
        config = self._config
        cassandra = config.cassandra
        values: dict[str, Any] = {
            "cassandra_backend": cassandra.backend,
            "cassandra_keyspace": cassandra.keyspace,
            "cassandra_write_consistency": config.tuning.write_consistency,
            "cassandra_read_consistency": config.tuning.read_consistency,
            "cassandra_request_timeout_seconds": cassandra.request_timeout_seconds,
            "cassandra_protocol_version": cassandra.protocol_version,
            # Only ARNs are in the environment; the functions read the secrets at cold start.
            "cassandra_secret_arn": cassandra.secret_arn,
        }
        if cassandra.backend == "keyspaces":
            stack = cdk.Stack.of(self)
            # Through the interface endpoint's private DNS; TLS checks this name on every connection.
            values["cassandra_contact_points"] = [keyspaces_endpoint(stack.region, stack.url_suffix)]
            values["cassandra_keyspaces_auth"] = cassandra.keyspaces_auth
            return values
        if cassandra.backend == "astra":
            values["cassandra_astra_bundle_secret_arn"] = cassandra.astra_bundle_secret_arn
            return values
        tls = cassandra.tls
        if tls is not None and tls.ca_file is not None:
            self._ca_files = {CA_BUNDLE_NAME: tls.ca_file}
        return {
            **values,
            "cassandra_contact_points": list(cassandra.contact_points),
            "cassandra_port": cassandra.port,
            "cassandra_local_dc": cassandra.local_dc,
            "cassandra_tls": tls is not None,
            "cassandra_tls_hostname_check": tls.hostname_check if tls else None,
            "cassandra_tls_server_name": tls.server_name if tls else None,
            "cassandra_tls_ca_file": CA_PATH_IN_LAMBDA if self._ca_files else None,
            "cassandra_tls_ca_secret_arn": tls.ca_secret_arn if tls else None,
        }

    def _grant_keyspaces(self) -> None:
        """Amazon Keyspaces by IAM: each function's actions on the keyspace's own tables, by ARN.

        The tables are the ones the migrations create (orderpipe_schema.migrations.created_tables),
        named one by one: a new table in a migration extends the schema function's grant with it.
        """
        keyspace = self._config.cassandra.keyspace
        stack = cdk.Stack.of(self)
        prefix = f"arn:{stack.partition}:cassandra:{stack.region}:{stack.account}:/keyspace/"
        keyspace_arn = f"{prefix}{keyspace}/"
        tables = created_tables()

        def table(name: str) -> str:
            return f"{prefix}{keyspace}/table/{name}"

        system = f"{prefix}system*"
        grants = {
            self.writer: [(["cassandra:Modify"], [table("orders")])],
            self.reader: [(["cassandra:Select"], [table("orders")])],
            self.schema: [
                # CREATE KEYSPACE and CREATE TYPE (types have no ARN: they take the keyspace's Create).
                (["cassandra:Create"], [keyspace_arn]),
                (["cassandra:Create", "cassandra:Alter"], list(map(table, tables))),
                (["cassandra:Select", "cassandra:Modify"], [table("schema_migrations")]),
            ],
        }
        for function, statements in grants.items():
            for actions, resources in [*statements, (["cassandra:Select"], [system])]:
                iam.Grant.add_to_principal(grantee=function, actions=actions, resource_arns=resources)
            # system.peers through the interface endpoint: one entry per AZ, when the role may look.
            iam.Grant.add_to_principal(
                grantee=function,
                actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcEndpoints"],
                resource_arns=["*"],
            )
