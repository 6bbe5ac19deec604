"""Compose the local pipeline: resources, schema, function environments, gateway, event source.

Authentication is on, as deployed (`RuntimeConfig.auth`): in `jwt` mode a local OAuth issuer mints
tokens for Cognito app clients in moto and the gateway runs the real authorizer function; in `iam`
mode the gateway verifies SigV4 signatures of local IAM credentials. `add_producer` creates a
producer the way `orderpipe producers add` does (the same code), and returns its credentials.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3

from orderpipe_authorizer.settings import AuthorizerSettings
from orderpipe_common import catalog
from orderpipe_common.identity import SCOPE_READ, SCOPE_READ_ALL, SCOPE_WRITE
from orderpipe_common.settings import CassandraSettings, PowertoolsSettings
from orderpipe_common.tuning import DEFAULT_TUNING, PipelineTuning
from orderpipe_devenv.aws import identity as aws_identity
from orderpipe_devenv.aws import resources as aws_resources
from orderpipe_devenv.lambda_events import ACCOUNT_ID, custom_resource_event
from orderpipe_devenv.local_issuer import CognitoClientDirectory, LocalIssuer
from orderpipe_devenv.processes import Started
from orderpipe_devenv.runtime.docs import DocsSite
from orderpipe_devenv.runtime.event_source import SqsEventSource
from orderpipe_devenv.runtime.gateway import ApiGatewayEmulator, Route
from orderpipe_devenv.runtime.gateway_auth import (
    GatewayAuth,
    IamCredential,
    LambdaRequestAuthorizer,
    LocalIamCredentials,
    SigV4Verifier,
    UsagePlanKeys,
    new_iam_credential,
    usage_plan_keys,
)
from orderpipe_devenv.runtime.lambda_pool import LocalFunction
from orderpipe_ops import producers as ops_producers
from orderpipe_ops.local_pipeline import LocalPipeline
from orderpipe_ops.pids import start_time
from orderpipe_reader.settings import ReaderSettings
from orderpipe_schema.settings import SchemaSettings

log = logging.getLogger("orderpipe.runtime")

LOCAL_REGION = "us-east-1"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


AuthMode = Literal["jwt", "iam"]
# The audience the local issuer puts in its tokens and the authorizer requires (as for Okta/Auth0).
LOCAL_AUDIENCE = "orderpipe-local"
DEFAULT_PRODUCER = "local-producer"


@dataclass(frozen=True, kw_only=True)
class LocalProducer:
    """A producer's credentials on the local runtime (what `orderpipe producers add` hands out)."""

    name: str
    auth: AuthMode
    scopes: tuple[str, ...] = ()
    token_url: str | None = None  # jwt: client credentials at the local issuer
    client_id: str | None = None
    client_secret: str | None = None
    access_key_id: str | None = None  # iam: a local IAM credential, and the usage-plan key
    secret_access_key: str | None = None
    api_key: str | None = None
    principal: str | None = None


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    auth: AuthMode = "jwt"
    keyspace: str = "orderpipe"
    replication: dict[str, str | int] = field(
        default_factory=lambda: {"class": "SimpleStrategy", "replication_factor": 1}
    )
    name_prefix: str = "orderpipe-local"
    tuning: PipelineTuning = DEFAULT_TUNING
    # Lambda scales the (unreserved) ingest; with 2 environments each single POST waited for its
    # SendMessage round trip behind the other, and the generator got ~130 of 150 POSTs/s through.
    ingest_concurrency: int = 4
    reader_concurrency: int = 2
    authorizer_concurrency: int = 1
    function_log_level: str = "WARNING"


class LocalRuntime(Started):
    """Context manager: everything runs inside `with`, and everything stops at its end."""

    def __init__(
        self,
        config: RuntimeConfig,
        *,
        cassandra_env: dict[str, str],
        aws_endpoint_url: str,
        sqs_endpoint_url: str | None = None,
        network_env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        # Where the functions reach their dependencies when not where the runtime itself does (through
        # Toxiproxy: orderpipe_devenv.runtime.faults); applied over every function's environment.
        self.network_env = dict(network_env or {})
        self.cassandra_env = {
            **cassandra_env,
            **CassandraSettings.environment(cassandra_keyspace=config.keyspace),
        }
        self.aws_endpoint_url = aws_endpoint_url
        # SQS on its own server (ElasticMQ): boto3's service-specific AWS_ENDPOINT_URL_SQS.
        self.sqs_endpoint_url = sqs_endpoint_url
        self.resources: aws_resources.PipelineResources | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.gateway: ApiGatewayEmulator | None = None
        self.event_source: SqsEventSource | None = None
        self.issuer: LocalIssuer | None = None
        self.identity: aws_identity.IdentityResources | None = None
        self.iam_credentials: dict[str, IamCredential] = {}
        self._default_producer: LocalProducer | None = None
        self._default_producer_lock = threading.Lock()

    @property
    def aws_env(self) -> dict[str, str]:
        env = {
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            **LOCAL_CREDENTIALS,
        }
        if self.sqs_endpoint_url:
            env["AWS_ENDPOINT_URL_SQS"] = self.sqs_endpoint_url
        return env

    def client(self, service: Any) -> Any:
        endpoint = self.sqs_endpoint_url if service == "sqs" and self.sqs_endpoint_url else None
        return boto3.client(
            service,
            endpoint_url=endpoint or self.aws_endpoint_url,
            region_name=LOCAL_REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def _function_env(self, service: str, extra: dict[str, str]) -> dict[str, str]:
        return {
            **self.aws_env,
            **PowertoolsSettings.environment(
                powertools_service_name=service,
                powertools_log_level=self.config.function_log_level,
                powertools_trace_disabled=True,  # no X-Ray daemon here
                # EMF metric lines on stdout are for CloudWatch; locally they'd drown the request log.
                powertools_metrics_disabled=True,
            ),
            **extra,
            **self.network_env,
        }

    def start(self) -> None:
        config, tuning = self.config, self.config.tuning
        log.info("creating queues and tables on %s", self.aws_endpoint_url)
        self.resources = aws_resources.create_pipeline_resources(
            config.name_prefix,
            tuning=tuning,
            sqs=self.client("sqs"),
            dynamodb=self.client("dynamodb"),
            cloudwatch=self.client("cloudwatch"),
        )
        cassandra = {
            **self.cassandra_env,
            **CassandraSettings.environment(
                cassandra_write_consistency=tuning.write_consistency,
                cassandra_read_consistency=tuning.read_consistency,
            ),
        }
        self._apply_schema(cassandra)
        resources = self.resources
        self.functions = {
            "ingest": LocalFunction(
                name="ingest",
                handler=catalog.handler_path("ingest"),
                concurrency=config.ingest_concurrency,
                timeout_seconds=tuning.ingest_timeout_seconds,
                environment=self._function_env("ingest", resources.ingest_environment()),
            ),
            "reader": LocalFunction(
                name="reader",
                handler=catalog.handler_path("reader"),
                concurrency=config.reader_concurrency,
                timeout_seconds=tuning.reader_timeout_seconds,
                environment=self._function_env(
                    "reader",
                    {
                        **cassandra,
                        **ReaderSettings.environment(
                            cache_table_name=resources.cache_table.name,
                            cache_ttl_seconds=tuning.cache_ttl_seconds,
                        ),
                    },
                ),
            ),
            "writer": LocalFunction(
                name="writer",
                handler=catalog.handler_path("writer"),
                concurrency=tuning.writer_max_concurrency,
                timeout_seconds=tuning.writer_timeout_seconds,
                environment=self._function_env("writer", cassandra),
            ),
        }
        api_url = f"http://{config.host}:{config.port}"
        self.identity = self._start_identity(api_url)
        if self.issuer is not None:
            self.functions["authorizer"] = LocalFunction(
                name="authorizer",
                handler=catalog.handler_path("authorizer"),
                concurrency=config.authorizer_concurrency,
                environment=self._function_env(
                    "authorizer",
                    AuthorizerSettings.environment(
                        auth_issuer=self.issuer.issuer,
                        auth_audience=LOCAL_AUDIENCE,
                        auth_jwks_url=self.issuer.jwks_url,
                        producers_table_name=self.identity.producers_table,
                    ),
                ),
            )
        for function in self.functions.values():
            function.warm_up()
        self.gateway = ApiGatewayEmulator(
            host=config.host,
            port=config.port,
            auth=self._gateway_auth(),
            routes=[
                Route("POST", "/orders", self.functions["ingest"].invoke),
                Route("POST", "/orders/batch", self.functions["ingest"].invoke),
                Route("GET", "/orders/{order_id}", self.functions["reader"].invoke),
            ],
            docs=DocsSite(token_url=self.issuer.token_url if self.issuer is not None else None),
        )
        self.event_source = SqsEventSource(
            sqs_client=self.client("sqs"),
            queue_url=resources.queue_url,
            queue_arn=resources.queue_arn,
            invoke=self.functions["writer"].invoke,
            batch_size=tuning.writer_batch_size,
            batching_window_seconds=tuning.writer_batching_window_seconds,
            max_concurrency=tuning.writer_max_concurrency,
        )
        self.gateway.start()
        self.event_source.start()

    def _start_identity(self, api_url: str) -> aws_identity.IdentityResources:
        config = self.config
        cognito = self.client("cognito-idp")
        user_pool_id = None
        if config.auth == "jwt":
            user_pool_id = aws_identity.create_user_pool(config.name_prefix, cognito=cognito)
            self.issuer = LocalIssuer(
                clients=CognitoClientDirectory(cognito, user_pool_id),
                audience=LOCAL_AUDIENCE,
                host=config.host,
            )
            self.issuer.start()
        return aws_identity.create_identity_resources(
            config.name_prefix,
            auth=config.auth,
            dynamodb=self.client("dynamodb"),
            apigateway=self.client("apigateway"),
            cognito=cognito,
            api_url=api_url,
            token_url=self.issuer.token_url if self.issuer else None,
            user_pool_id=user_pool_id,
        )

    def _gateway_auth(self) -> GatewayAuth:
        assert self.identity is not None
        keys = UsagePlanKeys(usage_plan_keys(self.client("apigateway"), self.identity.usage_plan_id))
        if self.config.auth == "jwt":
            return LambdaRequestAuthorizer(
                invoke=self.functions["authorizer"].invoke,
                ttl_seconds=self.config.tuning.authorizer_cache_ttl_seconds,
                usage_keys=keys,
            )
        credentials = LocalIamCredentials(
            self.iam_credentials,
            secretsmanager=self.client("secretsmanager"),
            secrets=aws_identity.local_iam_secrets(self.config.name_prefix),
        )
        return SigV4Verifier(credentials=credentials, usage_keys=keys)

    @property
    def deployment(self) -> ops_producers.Deployment:
        """This runtime as `orderpipe producers` sees it."""
        assert self.identity is not None, "the runtime is not started"
        return ops_producers.Deployment(
            auth=self.config.auth,
            producers_table=self.identity.producers_table,
            usage_plan_id=self.identity.usage_plan_id,
            api_url=self.url,
            user_pool_id=self.identity.user_pool_id,
            token_url=self.issuer.token_url if self.issuer else None,
            local_iam_secrets=(
                aws_identity.local_iam_secrets(self.config.name_prefix) if self.config.auth == "iam" else None
            ),
        )

    def producer_clients(self) -> ops_producers.Clients:
        return ops_producers.Clients(
            dynamodb=self.client("dynamodb"),
            apigateway=self.client("apigateway"),
            cognito=self.client("cognito-idp"),
        )

    def add_producer(
        self, name: str, *, scopes: tuple[str, ...] = (SCOPE_WRITE, SCOPE_READ), read_all: bool = False
    ) -> LocalProducer:
        """A new producer with credentials, made by `orderpipe producers add`'s code."""
        scopes = tuple(dict.fromkeys((*scopes, *((SCOPE_READ_ALL,) if read_all else ()))))
        if self.config.auth == "iam":
            principal = f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
            access_key, credential = new_iam_credential(principal)
            new = ops_producers.add_producer(
                self.deployment, self.producer_clients(), name, principal=principal
            )
            self.iam_credentials[access_key] = credential
            return LocalProducer(
                name=name,
                auth="iam",
                access_key_id=access_key,
                secret_access_key=credential.secret_access_key,
                api_key=new.api_key,
                principal=principal,
            )
        new = ops_producers.add_producer(self.deployment, self.producer_clients(), name, scopes=scopes)
        assert self.issuer is not None
        return LocalProducer(
            name=name,
            auth="jwt",
            scopes=scopes,
            token_url=self.issuer.token_url,
            client_id=new.client_id,
            client_secret=new.client_secret,
            principal=new.record.principal,
        )

    def default_producer(self) -> LocalProducer:
        """The producer `orderpipe run` prints credentials for (made on first use, orders/write + read).

        Safe from many threads: a drill's load threads ask at once, and a second `add_producer` of the
        same name is refused (the nemesis soak lost half its producer threads to that)."""
        with self._default_producer_lock:
            if self._default_producer is None:
                self._default_producer = self.add_producer(DEFAULT_PRODUCER)
            return self._default_producer

    def revoke_producer(self, name: str) -> None:
        ops_producers.revoke_producer(self.deployment, self.producer_clients(), name)

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        if self.issuer is not None:
            self.issuer.stop()
            self.issuer = None
        if self.event_source is not None:
            self.event_source.stop()
        for function in self.functions.values():
            function.close()
        self.gateway, self.event_source, self.functions = None, None, {}

    def _apply_schema(self, cassandra: dict[str, str]) -> None:
        """The schema function's handler, in its own environment, given the event CloudFormation's
        custom resource gives it on a deploy."""
        log.info("applying the schema to keyspace %s", self.config.keyspace)
        schema = LocalFunction(
            name="schema",
            handler=catalog.handler_path("schema"),
            concurrency=1,
            environment=self._function_env(
                "schema",
                {**cassandra, **SchemaSettings.environment(cassandra_replication=self.config.replication)},
            ),
        )
        try:
            answer = schema.invoke(custom_resource_event("Create", {"Keyspace": self.config.keyspace}))
        finally:
            schema.close()
        log.info("schema applied: %s", answer.get("Data", {}))

    @staticmethod
    def _producer_credentials(producer: LocalProducer) -> dict[str, str]:
        """How the state file's readers (orderpipe load, submit) authenticate as `producer`."""
        if producer.auth == "iam":
            return {
                "auth": "iam",
                "access_key_id": producer.access_key_id or "",
                "secret_access_key": producer.secret_access_key or "",
                "region": LOCAL_REGION,
                "x-api-key": producer.api_key or "",
            }
        return {
            "auth": "jwt",
            "token_url": producer.token_url or "",
            "client_id": producer.client_id or "",
            "client_secret": producer.client_secret or "",
        }

    def describe(self, *, cassandra_source: str) -> LocalPipeline:
        """Where this runtime's parts listen, as the local-pipeline state file records it."""
        assert self.resources is not None, "the runtime is not started"
        contact = self.cassandra_env[CassandraSettings.variable("cassandra_contact_points")]
        port = self.cassandra_env[CassandraSettings.variable("cassandra_port")]
        return LocalPipeline(
            pid=os.getpid(),
            pid_started=start_time(os.getpid()),
            api_url=self.url,
            region=LOCAL_REGION,
            access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_endpoint_url=self.aws_endpoint_url,
            sqs_endpoint_url=self.sqs_endpoint_url or self.aws_endpoint_url,
            queue_url=self.resources.queue_url,
            dlq_url=self.resources.dlq_url,
            cassandra=f"{contact}:{port} ({cassandra_source}), keyspace {self.config.keyspace}",
            resource_prefix=self.config.name_prefix,
            credentials=self._producer_credentials(self.default_producer()),
        )

    @property
    def url(self) -> str:
        assert self.gateway is not None, "the runtime is not started"
        return self.gateway.url
