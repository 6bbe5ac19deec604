"""Deployment settings read from CDK context, validated at synth with errors that name the key.

Every key lives under the `orderpipe:` prefix. `docs/deploy.md` documents them. `cdk.json` names no
cluster: a deploy names the user's, and `make synth` and the tests pass the example values of
`stacks/example_context.py`. Pipeline tuning (batch size,
concurrency, timeouts, retention, thresholds) is NOT defined here: it is
`orderpipe_common.tuning.PipelineTuning`, the same object the local runtime uses, with overrides
from the `orderpipe:tuning` key.
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from orderpipe_authorizer.settings import AuthorizerSettings
from orderpipe_common.cassandra_backends import (
    ASTRA_PROTOCOL_VERSIONS,
    BACKENDS,
    KEYSPACES_AUTH,
    KEYSPACES_PORT,
    KEYSPACES_PROTOCOL_VERSIONS,
    KEYSPACES_REPLICATION,
    SELF_MANAGED_PORT,
    consistency_problems,
)
from orderpipe_common.identity import PRODUCER_PATTERN
from orderpipe_common.settings import PROTOCOL_VERSIONS, CassandraSettings, ConsistencyName, HostnameCheck
from orderpipe_common.tuning import DEFAULT_TUNING, DEFAULT_USAGE_PLAN, TUNING_PROFILES, PipelineTuning
from orderpipe_ingest.settings import IngestSettings
from orderpipe_reader.settings import ReaderSettings

PREFIX = "orderpipe:"

# Defaults stated once: the functions' settings models own theirs; the stack's own are here.
DEFAULT_CASSANDRA_PORT: int = SELF_MANAGED_PORT
DEFAULT_REQUEST_TIMEOUT_SECONDS: float = CassandraSettings.default("cassandra_request_timeout_seconds")
DEFAULT_IDEMPOTENCY_SECONDS: int = IngestSettings.default("idempotency_expires_after_seconds")
DEFAULT_SCOPE_CLAIM: str = AuthorizerSettings.default("auth_scope_claim")
DEFAULT_PRINCIPAL_CLAIM: str = AuthorizerSettings.default("auth_principal_claim")
DEFAULT_LEGACY_PRODUCER: str = ReaderSettings.default("legacy_producer")
DEFAULT_KEYSPACE = "orderpipe"
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_API_RATE_LIMIT = DEFAULT_USAGE_PLAN.rate_limit
DEFAULT_API_BURST_LIMIT = DEFAULT_USAGE_PLAN.burst_limit
DEFAULT_API_QUOTA_PER_DAY = DEFAULT_USAGE_PLAN.quota_per_day
DEFAULT_NEW_VPC_CIDR = "10.40.0.0/16"
DEFAULT_MAX_AZS = 2

# Every key the app understands, with a one-line description (also used in error messages).
CONTEXT_KEYS: dict[str, str] = {
    "cassandraBackend": "Which Cassandra: self-managed (your cluster, reached through the VPC; default), keyspaces (Amazon Keyspaces through an interface VPC endpoint) or astra (DataStax Astra DB, functions outside the VPC).",
    "keyspacesAuth": "keyspaces: sigv4 (the functions' roles sign; default) or service-specific (an IAM user's service-specific credentials, JSON {username, password} in cassandraSecretArn).",
    "astraBundleSecretArn": "astra: Secrets Manager secret whose SecretBinary is the database's secure connect bundle (the zip). Required with astra.",
    "cassandraContactPoints": "Cassandra hosts the VPC functions connect to (list, or comma-separated string). Required.",
    "cassandraLocalDc": "Cassandra data center the driver treats as local. Required.",
    "cassandraCidrs": "CIDR blocks of the Cassandra nodes; the only destinations the VPC functions may reach on the Cassandra port. Required.",
    "cassandraPort": f"Cassandra native protocol port (default {DEFAULT_CASSANDRA_PORT}).",
    "cassandraKeyspace": f"Keyspace holding the orders table (default '{DEFAULT_KEYSPACE}').",
    "cassandraReplication": "Keyspace replication as a JSON object (default NetworkTopologyStrategy, 3 in cassandraLocalDc; a NetworkTopologyStrategy must name cassandraLocalDc).",
    "cassandraSecretArn": "Secrets Manager secret with the credentials: JSON {username, password} (self-managed; keyspaces with service-specific credentials) or the Astra application token (AstraCS:..., required with astra); the functions get read access.",
    "cassandraSecretKmsKeyArn": "Customer-managed KMS key that encrypts the Cassandra secret(s); the functions get kms:Decrypt through Secrets Manager only (optional).",
    "cassandraTls": "Connect to Cassandra over TLS (true/false, default false).",
    "cassandraTlsCaFile": "PEM file (path from the repository root) with the CA certificate(s) the nodes' certificates chain to; shipped in the function bundles.",
    "cassandraTlsCaSecretArn": "Secrets Manager secret whose SecretString is the PEM of the cluster's CA (instead of cassandraTlsCaFile).",
    "cassandraTlsHostnameCheck": "How node certificates are matched: server_name (every node's certificate carries cassandraTlsServerName), ip_san (each carries its own IP address), chain_only (no name check; needs a private CA). Required with cassandraTls.",
    "cassandraTlsServerName": "The DNS name every node's certificate carries (with cassandraTlsHostnameCheck=server_name).",
    "cassandraProtocolVersion": "Pin the native protocol version (3, 4 or 5; 3 or 4 with keyspaces and astra, which do not speak v5); default: the driver negotiates the highest the cluster speaks (keyspaces: 4 pinned).",
    "cassandraRequestTimeoutSeconds": f"Driver request timeout (default {DEFAULT_REQUEST_TIMEOUT_SECONDS:g}).",
    "cassandraPeerVpcId": "New VPC only: the VPC of the Cassandra nodes (same account and region); the stack creates the peering connection and the routes both ways.",
    "cassandraPeerRouteTableIds": "With cassandraPeerVpcId: the route tables of the Cassandra nodes' subnets; the stack adds the return route to newVpcCidr to each.",
    "cassandraPeeringConnectionId": "Existing VPC only: an active VPC peering connection to the Cassandra nodes' network; the stack routes cassandraCidrs through it.",
    "cassandraTransitGatewayId": "A Transit Gateway that reaches cassandraCidrs: a new VPC is attached to it; in both cases the function subnets route cassandraCidrs to it.",
    "cassandraRoutesExist": "Existing VPC only: true if vpcRouteTableIds already route cassandraCidrs (peering, Transit Gateway, VPN, Direct Connect); the stack adds no route.",
    "vpcId": "Use this existing VPC instead of creating one (then vpcSubnetIds, vpcAvailabilityZones, vpcRouteTableIds are required).",
    "vpcCidr": "Primary IPv4 CIDR of the existing VPC (required with vpcId).",
    "vpcSubnetIds": "Private subnets of the existing VPC the VPC functions run in.",
    "vpcAvailabilityZones": "Availability zones of vpcSubnetIds, in the same order.",
    "vpcRouteTableIds": "Route tables of vpcSubnetIds, in the same order (the DynamoDB gateway endpoint is added to them).",
    "createVpcEndpoints": "Create the DynamoDB gateway endpoint and the interface endpoints (default true; set false if the existing VPC has them).",
    "newVpcCidr": f"CIDR of the VPC created when vpcId is not given (default {DEFAULT_NEW_VPC_CIDR}).",
    "maxAzs": f"Availability zones of the VPC created when vpcId is not given (default {DEFAULT_MAX_AZS}).",
    "alarmEmail": "E-mail address subscribed to the alarm topic (optional).",
    "logLevel": f"Log level of every function (default {DEFAULT_LOG_LEVEL}).",
    "apiRateLimit": f"Usage plan steady-state rate, requests per second per API key (default {DEFAULT_API_RATE_LIMIT}).",
    "apiBurstLimit": f"Usage plan burst, requests per API key (default {DEFAULT_API_BURST_LIMIT}).",
    "apiQuotaPerDay": f"Usage plan quota, requests per API key per day (default {DEFAULT_API_QUOTA_PER_DAY}).",
    "idempotencyExpiresAfterSeconds": f"How long an Idempotency-Key is remembered by ingest (default {DEFAULT_IDEMPOTENCY_SECONDS}).",
    "auth": "How producers authenticate: jwt (OAuth 2.0 access tokens checked by the authorizer function; default) or iam (SigV4, AWS_IAM on every method).",
    "authIssuer": "jwt: URL of an external OIDC issuer (Okta, Auth0, Entra...); unset: the stack creates a Cognito user pool with the client-credentials grant.",
    "authAudience": "jwt with authIssuer: the audience (aud) tokens must carry (required with authIssuer; Cognito access tokens carry none).",
    "authJwksUrl": "jwt with authIssuer: where the issuer publishes its keys (default <issuer>/.well-known/jwks.json; Okta <issuer>/v1/keys).",
    "authScopeClaim": f"jwt: the claim listing scopes (default {DEFAULT_SCOPE_CLAIM}; Okta and Entra: scp).",
    "authPrincipalClaim": f"jwt: the claim naming the client (default {DEFAULT_PRINCIPAL_CLAIM}).",
    "cognitoDomainPrefix": "jwt with Cognito: the hosted domain prefix of the token endpoint (default <stackname>-<account id>, lower case).",
    "readAllPrincipals": "iam: role/user ARNs that may read every producer's orders (list or comma-separated).",
    "legacyProducer": f"The producer that orders stored before producers existed belong to (default {DEFAULT_LEGACY_PRODUCER}).",
    "apiGatewayCloudWatchRole": "existing (default: the account's API Gateway settings already name a CloudWatch Logs role in this region) or create (this stack sets one, and keeps it on deletion).",
    "readerReservedConcurrency": "Reserved concurrency of the reader: at most this many environments, each with its own Cassandra connections (default 20; 'none' leaves it unreserved, for accounts whose concurrency quota is below 100 + this).",
    "stackName": "Name of the CloudFormation stack (default OrderPipe).",
    "snapStart": "Lambda SnapStart for ingest, reader and writer (true/false, default false): each is published as a version, restored from a snapshot instead of initialized, and reached through its alias `live` (see docs/deploy.md for when it pays).",
    "tuningProfile": "Pipeline tuning to start from: default (batches of up to 100 within 1 s) or low_latency (no batching window, batches of 10); orderpipe:tuning overrides apply on top.",
    "tuning": 'Overrides of orderpipe_common.tuning.PipelineTuning as a JSON object, e.g. {"writer_max_concurrency": 10}.',
}

# Keys that describe a self-managed cluster, its network path, or the VPC (refused where unused).
SELF_MANAGED_KEYS = (
    "cassandraContactPoints",
    "cassandraLocalDc",
    "cassandraCidrs",
    "cassandraPort",
    "cassandraTls",
    "cassandraTlsCaFile",
    "cassandraTlsCaSecretArn",
    "cassandraTlsHostnameCheck",
    "cassandraTlsServerName",
)
NETWORK_PATH_KEYS = (
    "cassandraPeerVpcId",
    "cassandraPeerRouteTableIds",
    "cassandraPeeringConnectionId",
    "cassandraTransitGatewayId",
    "cassandraRoutesExist",
)
VPC_KEYS = (
    "vpcId",
    "vpcCidr",
    "vpcSubnetIds",
    "vpcAvailabilityZones",
    "vpcRouteTableIds",
    "createVpcEndpoints",
    "newVpcCidr",
    "maxAzs",
)
_CONSISTENCY_LEVELS = set(ConsistencyName.__args__)  # type: ignore[attr-defined]
_KEYSPACE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_HTTPS_URL = re.compile(r"^https://[^\s/$.?#][^\s]*$")
_DOMAIN_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_IAM_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_ROUTE_TABLE_ID = re.compile(r"^rtb-[0-9a-f]{8,17}$")
_PEERING_ID = re.compile(r"^pcx-[0-9a-f]{8,17}$")
_TRANSIT_GATEWAY_ID = re.compile(r"^tgw-[0-9a-f]{8,17}$")
_KMS_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/mrk-[0-9a-f]{32}$"
)
_HOSTNAME_CHECKS: tuple[str, ...] = get_args(HostnameCheck)
REPO_ROOT = Path(__file__).resolve().parent.parent
ApiCloudWatchRole = Literal["existing", "create"]


def _valid_cidrs(cidrs: tuple[str, ...]) -> list[str]:
    valid = []
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
            valid.append(cidr)
        except ValueError:
            pass
    return valid


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ContextError(ValueError):
    """The CDK context does not describe a deployable configuration."""


@dataclass(frozen=True, kw_only=True)
class ExistingVpc:
    vpc_id: str
    cidr: str
    subnet_ids: tuple[str, ...]
    availability_zones: tuple[str, ...]
    route_table_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class NetworkPath:
    """How the function subnets reach `cassandraCidrs`; exactly one way is set."""

    # New VPC: the stack peers it with this VPC and routes both ways.
    peer_vpc_id: str | None = None
    peer_route_table_ids: tuple[str, ...] = ()
    # Existing VPC: an active peering connection the stack routes through.
    peering_connection_id: str | None = None
    # Either VPC: a Transit Gateway (a new VPC is attached to it by the stack).
    transit_gateway_id: str | None = None
    # Existing VPC: its route tables already route cassandraCidrs, or the nodes are inside it.
    routes_exist: bool = False
    same_vpc: bool = False


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    hostname_check: HostnameCheck
    server_name: str | None = None
    ca_file: Path | None = None
    ca_secret_arn: str | None = None


@dataclass(frozen=True, kw_only=True)
class CassandraConfig:
    backend: str = "self-managed"
    # Self-managed only (empty for the managed backends).
    contact_points: tuple[str, ...] = ()
    local_dc: str = ""
    cidrs: tuple[str, ...] = ()
    port: int = DEFAULT_CASSANDRA_PORT
    keyspace: str = DEFAULT_KEYSPACE
    replication: Mapping[str, str | int] = field(default_factory=dict)
    secret_arn: str | None = None
    secret_kms_key_arn: str | None = None
    tls: TlsConfig | None = None
    protocol_version: int | None = None
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    keyspaces_auth: str = "sigv4"  # "sigv4" | "service_specific"
    astra_bundle_secret_arn: str | None = None

    @property
    def secret_arns(self) -> tuple[str, ...]:
        """Every secret the Cassandra functions read: the credentials, the CA, the Astra bundle."""
        arns = (self.secret_arn, self.tls.ca_secret_arn if self.tls else None, self.astra_bundle_secret_arn)
        return tuple(arn for arn in arns if arn)

    @property
    def in_vpc(self) -> bool:
        """Whether the Cassandra functions run in the VPC (Astra is reached over the internet)."""
        return self.backend != "astra"


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    rate_limit: int = DEFAULT_API_RATE_LIMIT
    burst_limit: int = DEFAULT_API_BURST_LIMIT
    quota_per_day: int = DEFAULT_API_QUOTA_PER_DAY


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    mode: str = "jwt"  # "jwt" | "iam"
    issuer: str | None = None  # None with jwt: the stack's own Cognito user pool
    audience: str | None = None
    jwks_url: str | None = None
    scope_claim: str = DEFAULT_SCOPE_CLAIM
    principal_claim: str = DEFAULT_PRINCIPAL_CLAIM
    cognito_domain_prefix: str | None = None
    read_all_principals: tuple[str, ...] = ()
    legacy_producer: str = DEFAULT_LEGACY_PRODUCER

    @property
    def cognito(self) -> bool:
        return self.mode == "jwt" and self.issuer is None


@dataclass(frozen=True, kw_only=True)
class OrderPipeConfig:
    cassandra: CassandraConfig
    tuning: PipelineTuning = DEFAULT_TUNING
    api: ApiConfig = field(default_factory=ApiConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    network_path: NetworkPath = field(default_factory=NetworkPath)
    existing_vpc: ExistingVpc | None = None
    create_vpc_endpoints: bool = True
    new_vpc_cidr: str = DEFAULT_NEW_VPC_CIDR
    max_azs: int = DEFAULT_MAX_AZS
    alarm_email: str | None = None
    log_level: str = DEFAULT_LOG_LEVEL
    idempotency_expires_after_seconds: int = DEFAULT_IDEMPOTENCY_SECONDS
    api_cloudwatch_role: ApiCloudWatchRole = "existing"
    reader_reserved_concurrency: int | None = 20
    snap_start: bool = False

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> OrderPipeConfig:
        """Build from a context getter (`node.try_get_context`); raises ContextError listing every problem."""
        reader = _Reader(get)
        config = reader.build()
        if reader.problems:
            listed = "\n  - ".join(reader.problems)
            raise ContextError(
                f"invalid CDK context (set it in cdk.json or with `cdk synth -c key=value`; see docs/deploy.md):\n  - {listed}"
            )
        assert config is not None
        return config


class _Reader:
    def __init__(self, get: Callable[[str], Any]) -> None:
        self._get = get
        self.problems: list[str] = []

    # -- primitives -------------------------------------------------------------------------------
    def raw(self, key: str) -> Any:
        if key not in CONTEXT_KEYS:  # a typo in this module, not in the user's context
            raise KeyError(key)
        value = self._get(PREFIX + key)
        return None if value == "" else value

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{PREFIX}{key}: {message} ({CONTEXT_KEYS[key]})")

    def strings(self, key: str, *, required: bool) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            if required:
                self.fail(key, "is not set")
            return ()
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as error:
                    self.fail(key, f"is not a JSON list: {error}")
                    return ()
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, f"must be a list of non-empty strings, got {value!r}")
            return ()
        if required and not value:
            self.fail(key, "is empty")
        return tuple(value)

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = int(str(value), 10) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            self.fail(key, f"must be an integer between {low} and {high}, got {value!r}")
            return default
        return number

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = float(value) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            self.fail(key, f"must be a number between {low} and {high}, got {value!r}")
            return default
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        self.fail(key, f"must be true or false, got {value!r}")
        return default

    def obj(self, key: str) -> dict[str, Any] | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                self.fail(key, f"is not a JSON object: {error}")
                return None
        if not isinstance(value, dict):
            self.fail(key, f"must be a JSON object, got {value!r}")
            return None
        return value

    def optional_string(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
            self.fail(key, f"must be {what}, got {value!r}")
            return None
        return value.strip()

    # -- the whole configuration ------------------------------------------------------------------
    def build(self) -> OrderPipeConfig | None:
        tuning = self.tuning()
        no_cluster = self.no_cluster_named()
        cassandra = None if no_cluster else self.cassandra(tuning)
        existing_vpc = self.existing_vpc() if self.backend() != "astra" else None
        new_vpc_cidr = self.raw("newVpcCidr") or DEFAULT_NEW_VPC_CIDR
        try:
            network = ipaddress.ip_network(str(new_vpc_cidr), strict=True)
            if not 16 <= network.prefixlen <= 24 or network.version != 4:
                self.fail("newVpcCidr", f"must be an IPv4 block between /16 and /24, got {new_vpc_cidr!r}")
        except ValueError as error:
            self.fail("newVpcCidr", f"is not a CIDR block: {error}")
        log_level = str(self.raw("logLevel") or DEFAULT_LOG_LEVEL).upper()
        if log_level not in _LOG_LEVELS:
            self.fail("logLevel", f"must be one of {sorted(_LOG_LEVELS)}, got {log_level!r}")
        api = ApiConfig(
            rate_limit=self.integer("apiRateLimit", DEFAULT_API_RATE_LIMIT, low=1, high=100_000),
            burst_limit=self.integer("apiBurstLimit", DEFAULT_API_BURST_LIMIT, low=1, high=100_000),
            quota_per_day=self.integer("apiQuotaPerDay", DEFAULT_API_QUOTA_PER_DAY, low=1, high=10**12),
        )
        create_vpc_endpoints = self.boolean("createVpcEndpoints", True)
        max_azs = self.integer("maxAzs", DEFAULT_MAX_AZS, low=1, high=6)
        alarm_email = self.optional_string("alarmEmail", _EMAIL, "an e-mail address")
        idempotency_seconds = self.integer(
            "idempotencyExpiresAfterSeconds", DEFAULT_IDEMPOTENCY_SECONDS, low=60, high=7 * 24 * 3600
        )
        auth = self.auth()
        network_path: NetworkPath | None = NetworkPath()
        if no_cluster:
            network_path = None
        elif self.backend() == "self-managed":
            network_path = self.network_path(
                cassandra.cidrs if cassandra else (), existing_vpc, str(new_vpc_cidr)
            )
        else:
            self.unused_with_backend(NETWORK_PATH_KEYS)
        if self.backend() == "astra":
            self.unused_with_backend(VPC_KEYS)
        api_role = str(self.raw("apiGatewayCloudWatchRole") or "existing")
        if api_role not in get_args(ApiCloudWatchRole):
            self.fail("apiGatewayCloudWatchRole", f"must be existing or create, got {api_role!r}")
        reader_concurrency: int | None = None  # "none": unreserved
        if str(self.raw("readerReservedConcurrency") or "").lower() != "none":
            reader_concurrency = self.integer("readerReservedConcurrency", 20, low=1, high=1000)
        snap_start = self.boolean("snapStart", False)
        if self.problems or cassandra is None or network_path is None:
            return None
        return OrderPipeConfig(
            cassandra=cassandra,
            tuning=tuning,
            api=api,
            existing_vpc=existing_vpc,
            create_vpc_endpoints=create_vpc_endpoints,
            new_vpc_cidr=str(new_vpc_cidr),
            max_azs=max_azs,
            alarm_email=alarm_email,
            log_level=log_level,
            idempotency_expires_after_seconds=idempotency_seconds,
            network_path=network_path,
            api_cloudwatch_role=api_role,  # type: ignore[arg-type]  # checked above
            reader_reserved_concurrency=reader_concurrency,
            auth=auth,
            snap_start=snap_start,
        )

    def no_cluster_named(self) -> bool:
        """Nothing names a Cassandra (a bare `cdk synth`): one problem naming every key still missing.

        The per-key problems would say the same four times, and the network path's would ask for
        routes to CIDRs nobody gave.
        """
        cluster_keys = ("cassandraContactPoints", "cassandraLocalDc", "cassandraCidrs")
        if self.raw("cassandraBackend") is not None or any(self.raw(k) is not None for k in cluster_keys):
            return False
        missing = [PREFIX + key for key in cluster_keys]
        path_keys = (
            "cassandraPeerVpcId",
            "cassandraTransitGatewayId",
            "cassandraPeeringConnectionId",
            "vpcId",
        )
        if not any(self.raw(key) is not None for key in path_keys):
            missing.append(
                f"a network path ({PREFIX}cassandraPeerVpcId with {PREFIX}cassandraPeerRouteTableIds, "
                f"or {PREFIX}cassandraTransitGatewayId, or an existing VPC: {PREFIX}vpcId and its keys)"
            )
        self.problems.append(
            f"no Cassandra cluster is named (cdk.json holds none): set {', '.join(missing)}; or choose a "
            f"managed one with {PREFIX}cassandraBackend=keyspaces or astra. docs/deploy.md has a complete "
            "command for each (sections 3, 4a, 4b); `make synth` synthesizes with example values"
        )
        return True

    def auth(self) -> AuthConfig:
        mode = str(self.raw("auth") or "jwt").lower()
        if mode not in {"jwt", "iam"}:
            self.fail("auth", f"must be jwt or iam, got {mode!r}")
            mode = "jwt"
        issuer = self.optional_string("authIssuer", _HTTPS_URL, "an https URL")
        audience = self.raw("authAudience")
        jwks_url = self.optional_string("authJwksUrl", _HTTPS_URL, "an https URL")
        if issuer and not audience:
            self.fail("authAudience", "is required with authIssuer (the API's identifier at your issuer)")
        if mode == "iam" and (issuer or jwks_url):
            self.fail("authIssuer", "applies to auth jwt only")
        domain = self.optional_string(
            "cognitoDomainPrefix", _DOMAIN_PREFIX, "lower-case letters, digits and hyphens"
        )
        principals = self.strings("readAllPrincipals", required=False)
        for arn in principals:
            if not _IAM_ARN.fullmatch(arn):
                self.fail("readAllPrincipals", f"{arn!r} is not an IAM role or user ARN")
        legacy = str(self.raw("legacyProducer") or DEFAULT_LEGACY_PRODUCER)
        if not re.fullmatch(PRODUCER_PATTERN, legacy):
            self.fail("legacyProducer", f"must match {PRODUCER_PATTERN}, got {legacy!r}")
        return AuthConfig(
            mode=mode,
            issuer=issuer,
            audience=str(audience) if audience else None,
            jwks_url=jwks_url,
            scope_claim=str(self.raw("authScopeClaim") or DEFAULT_SCOPE_CLAIM),
            principal_claim=str(self.raw("authPrincipalClaim") or DEFAULT_PRINCIPAL_CLAIM),
            cognito_domain_prefix=domain,
            read_all_principals=principals,
            legacy_producer=legacy,
        )

    def tuning(self) -> PipelineTuning:
        overrides = self.obj("tuning") or {}
        profile = str(self.raw("tuningProfile") or "default")
        if profile not in TUNING_PROFILES:
            self.fail("tuningProfile", f"must be one of {sorted(TUNING_PROFILES)}, got {profile!r}")
            return DEFAULT_TUNING
        try:
            tuning = TUNING_PROFILES[profile].with_overrides(overrides)
        except (ValueError, TypeError) as error:
            self.fail("tuning", str(error))
            return DEFAULT_TUNING
        for name in ("write_consistency", "read_consistency"):
            if getattr(tuning, name) not in _CONSISTENCY_LEVELS:
                self.fail("tuning", f"{name} must be one of {sorted(_CONSISTENCY_LEVELS)}")
        backend = self.backend()
        for problem in consistency_problems(
            backend, write=tuning.write_consistency, read=tuning.read_consistency
        ):
            self.fail(
                "tuning",
                f"{problem} (write_consistency / read_consistency with orderpipe:cassandraBackend={backend})",
            )
        return tuning

    def backend(self) -> str:
        value = str(self.raw("cassandraBackend") or "self-managed")
        if value not in BACKENDS:
            if not any(p.startswith(f"{PREFIX}cassandraBackend:") for p in self.problems):
                self.fail("cassandraBackend", f"must be one of {', '.join(BACKENDS)}, got {value!r}")
            return "self-managed"
        return value

    def unused_with_backend(self, keys: tuple[str, ...]) -> None:
        """One problem listing the keys this backend does not use, with the flags that unset them."""
        backend = self.backend()
        given = [key for key in keys if self.raw(key) is not None]
        if given:
            self.problems.append(
                f"{', '.join(PREFIX + k for k in given)} {'is' if len(given) == 1 else 'are'} not used with "
                f"{PREFIX}cassandraBackend={backend}; unset {'it' if len(given) == 1 else 'them'}: "
                f"{' '.join(f'-c {PREFIX}{k}=' for k in given)}"
            )

    def keyspace(self) -> str:
        keyspace = str(self.raw("cassandraKeyspace") or DEFAULT_KEYSPACE)
        if not _KEYSPACE.fullmatch(keyspace):
            self.fail("cassandraKeyspace", f"must match {_KEYSPACE.pattern}, got {keyspace!r}")
        return keyspace

    def request_timeout(self, tuning: PipelineTuning) -> float:
        return self.number(
            "cassandraRequestTimeoutSeconds",
            DEFAULT_REQUEST_TIMEOUT_SECONDS,
            low=0.1,
            high=float(tuning.writer_timeout_seconds - 1),
        )

    def managed_cassandra(self, backend: str, tuning: PipelineTuning) -> CassandraConfig:
        """Amazon Keyspaces or Astra: no hosts, networks or TLS to give; what each needs instead."""
        self.unused_with_backend(SELF_MANAGED_KEYS)
        keyspace = self.keyspace()
        secret_arn = self.optional_string("cassandraSecretArn", _SECRET_ARN, "a Secrets Manager secret ARN")
        kms_key = self.optional_string("cassandraSecretKmsKeyArn", _KMS_KEY_ARN, "a KMS key ARN (key/...)")
        keyspaces_auth = str(self.raw("keyspacesAuth") or "sigv4").replace("-", "_")
        bundle = self.optional_string("astraBundleSecretArn", _SECRET_ARN, "a Secrets Manager secret ARN")
        replication: Mapping[str, str | int] = {}
        protocol: int | None = None
        if backend == "keyspaces":
            if keyspaces_auth not in KEYSPACES_AUTH:
                self.fail(
                    "keyspacesAuth", f"must be sigv4 or service-specific, got {self.raw('keyspacesAuth')!r}"
                )
            if keyspaces_auth == "sigv4" and self.raw("cassandraSecretArn") is not None:
                self.fail(
                    "cassandraSecretArn", "is not used with keyspacesAuth=sigv4 (the functions' roles sign)"
                )
            if (
                keyspaces_auth == "service_specific"
                and secret_arn is None
                and self.raw("cassandraSecretArn") is None
            ):
                self.fail(
                    "cassandraSecretArn",
                    "is not set: keyspacesAuth=service-specific reads the credentials from it",
                )
            if self.raw("astraBundleSecretArn") is not None:
                self.fail("astraBundleSecretArn", "is only used with orderpipe:cassandraBackend=astra")
            replication = self.obj("cassandraReplication") or dict(KEYSPACES_REPLICATION)
            if dict(replication) != KEYSPACES_REPLICATION:
                self.fail(
                    "cassandraReplication",
                    f"must be {json.dumps(KEYSPACES_REPLICATION)} with keyspaces (or unset it: -c {PREFIX}cassandraReplication=); "
                    "multi-Region keyspaces are not supported by this stack",
                )
            protocol = self.protocol_version(KEYSPACES_PROTOCOL_VERSIONS)
        else:
            self.unused_with_backend(("keyspacesAuth", "cassandraReplication"))
            protocol = self.protocol_version(ASTRA_PROTOCOL_VERSIONS)
            if bundle is None and self.raw("astraBundleSecretArn") is None:
                self.fail(
                    "astraBundleSecretArn", "is not set: the functions read the secure connect bundle from it"
                )
            if secret_arn is None and self.raw("cassandraSecretArn") is None:
                self.fail(
                    "cassandraSecretArn",
                    "is not set: with astra it holds the application token (AstraCS:...)",
                )
        if kms_key and not (secret_arn or bundle):
            self.fail("cassandraSecretKmsKeyArn", "is set but no secret is (orderpipe:cassandraSecretArn)")
        return CassandraConfig(
            backend=backend,
            port=KEYSPACES_PORT if backend == "keyspaces" else DEFAULT_CASSANDRA_PORT,
            keyspace=keyspace,
            replication=replication,
            secret_arn=secret_arn,
            secret_kms_key_arn=kms_key,
            protocol_version=protocol,
            request_timeout_seconds=self.request_timeout(tuning),
            keyspaces_auth=keyspaces_auth if keyspaces_auth in KEYSPACES_AUTH else "sigv4",
            astra_bundle_secret_arn=bundle,
        )

    def cassandra(self, tuning: PipelineTuning) -> CassandraConfig | None:
        backend = self.backend()
        if backend != "self-managed":
            return self.managed_cassandra(backend, tuning)
        self.unused_with_backend(("keyspacesAuth", "astraBundleSecretArn"))
        contact_points = self.strings("cassandraContactPoints", required=True)
        for host in contact_points:
            if not _HOST.fullmatch(host):
                self.fail("cassandraContactPoints", f"{host!r} is not a host name or IP address")
        local_dc = self.raw("cassandraLocalDc")
        if not isinstance(local_dc, str) or not local_dc.strip():
            self.fail("cassandraLocalDc", "is not set")
            local_dc = ""
        cidrs = self.strings("cassandraCidrs", required=True)
        for cidr in cidrs:
            try:
                block = ipaddress.ip_network(cidr, strict=True)
                if block.version != 4:
                    self.fail("cassandraCidrs", f"{cidr!r} is not IPv4")
                elif block.prefixlen == 0:
                    self.fail(
                        "cassandraCidrs", "0.0.0.0/0 is not allowed: name the Cassandra nodes' networks"
                    )
            except ValueError as error:
                self.fail("cassandraCidrs", f"{cidr!r} is not a CIDR block: {error}")
        for host in contact_points:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                continue  # a DNS name: cannot be checked at synth
            if cidrs and not any(
                address in ipaddress.ip_network(c, strict=False) for c in _valid_cidrs(cidrs)
            ):
                self.fail(
                    "cassandraContactPoints",
                    f"{host} is in none of orderpipe:cassandraCidrs, so the security group would block it",
                )
        keyspace = self.keyspace()
        replication = self.obj("cassandraReplication") or {
            "class": "NetworkTopologyStrategy",
            local_dc.strip(): 3,
        }
        if "class" not in replication:
            self.fail("cassandraReplication", "needs a 'class' entry")
        elif (
            str(replication["class"]).rsplit(".", 1)[-1] == "NetworkTopologyStrategy"
            and local_dc.strip()
            and local_dc.strip() not in replication
        ):
            # Cassandra 4.0+ refuses a keyspace naming an unknown DC, and without replicas in the local
            # DC every LOCAL_QUORUM write and read would fail.
            named = sorted(str(k) for k in replication if k != "class")
            self.fail(
                "cassandraReplication",
                f"NetworkTopologyStrategy names {', '.join(named) or 'no data center'} but not "
                f"orderpipe:cassandraLocalDc ({local_dc.strip()!r}): the local DC needs replicas "
                "(or leave cassandraReplication unset: 3 in the local DC)",
            )
        secret_arn = self.optional_string("cassandraSecretArn", _SECRET_ARN, "a Secrets Manager secret ARN")
        tls = self.tls(contact_points)
        kms_key = self.optional_string("cassandraSecretKmsKeyArn", _KMS_KEY_ARN, "a KMS key ARN (key/...)")
        if kms_key and not (secret_arn or (tls and tls.ca_secret_arn)):
            self.fail("cassandraSecretKmsKeyArn", "is set but no secret is (orderpipe:cassandraSecretArn)")
        protocol = self.protocol_version(PROTOCOL_VERSIONS)
        return CassandraConfig(
            contact_points=contact_points,
            local_dc=local_dc.strip(),
            cidrs=cidrs,
            port=self.integer("cassandraPort", DEFAULT_CASSANDRA_PORT, low=1, high=65535),
            keyspace=keyspace,
            replication=replication,
            secret_arn=secret_arn,
            secret_kms_key_arn=kms_key,
            tls=tls,
            protocol_version=protocol,
            request_timeout_seconds=self.request_timeout(tuning),
        )

    def protocol_version(self, allowed: Collection[int]) -> int | None:
        """The pinned native protocol version, or None: the driver negotiates."""
        if self.raw("cassandraProtocolVersion") is None:
            return None
        return self.integer("cassandraProtocolVersion", 0, low=min(allowed), high=max(allowed)) or None

    def tls(self, contact_points: tuple[str, ...]) -> TlsConfig | None:
        enabled = self.boolean("cassandraTls", False)
        keys = (
            "cassandraTlsCaFile",
            "cassandraTlsCaSecretArn",
            "cassandraTlsHostnameCheck",
            "cassandraTlsServerName",
        )
        if not enabled:
            for key in keys:
                if self.raw(key) is not None:
                    self.fail(key, "is only used with orderpipe:cassandraTls=true")
            return None
        check = self.raw("cassandraTlsHostnameCheck")
        if check is None:
            self.fail(
                "cassandraTlsHostnameCheck",
                "is not set: say how node certificates are matched (server_name, ip_san or chain_only); "
                "the driver connects to every node by its IP address, so a certificate with only a DNS "
                "name fails ip_san",
            )
            return None
        if check not in _HOSTNAME_CHECKS:
            self.fail(
                "cassandraTlsHostnameCheck", f"must be one of {', '.join(_HOSTNAME_CHECKS)}, got {check!r}"
            )
            return None
        server_name = self.optional_string("cassandraTlsServerName", _DNS_NAME, "a DNS name")
        if check == "server_name" and server_name is None and self.raw("cassandraTlsServerName") is None:
            self.fail(
                "cassandraTlsServerName", "is not set (needed with cassandraTlsHostnameCheck=server_name)"
            )
        if check != "server_name" and server_name is not None:
            self.fail(
                "cassandraTlsServerName",
                f"is only used with cassandraTlsHostnameCheck=server_name, not {check}",
            )
        ca_file = self.ca_file()
        ca_secret = self.optional_string(
            "cassandraTlsCaSecretArn", _SECRET_ARN, "a Secrets Manager secret ARN"
        )
        if ca_file is not None and ca_secret is not None:
            self.fail(
                "cassandraTlsCaSecretArn",
                "set either orderpipe:cassandraTlsCaFile or orderpipe:cassandraTlsCaSecretArn, not both",
            )
        if (
            check == "chain_only"
            and ca_file is None
            and ca_secret is None
            and self.raw("cassandraTlsCaFile") is None
        ):
            self.fail(
                "cassandraTlsHostnameCheck",
                "chain_only needs the cluster's own CA (orderpipe:cassandraTlsCaFile or "
                "orderpipe:cassandraTlsCaSecretArn): without a name check, any certificate from a public CA would pass",
            )
        if check == "ip_san" and not any(_is_ip(host) for host in contact_points):
            self.fail(
                "cassandraTlsHostnameCheck",
                "ip_san checks each node's IP address, but every contact point is a DNS name: use server_name",
            )
        return TlsConfig(
            hostname_check=check, server_name=server_name, ca_file=ca_file, ca_secret_arn=ca_secret
        )

    def ca_file(self) -> Path | None:
        value = self.raw("cassandraTlsCaFile")
        if value is None:
            return None
        path = Path(str(value))
        path = path if path.is_absolute() else REPO_ROOT / path
        if not path.is_file():
            self.fail("cassandraTlsCaFile", f"{path} is not a file")
            return None
        text = path.read_text(errors="replace")
        if "PRIVATE KEY" in text:
            self.fail("cassandraTlsCaFile", f"{path} holds a private key: ship only the CA certificate(s)")
            return None
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
        except ssl.SSLError as error:
            self.fail("cassandraTlsCaFile", f"{path} is not a PEM file of CA certificates: {error}")
            return None
        return path

    def network_path(
        self, cidrs: tuple[str, ...], existing_vpc: ExistingVpc | None, new_vpc_cidr: str
    ) -> NetworkPath | None:
        """Exactly one way from the function subnets to cassandraCidrs, or one problem naming the keys."""
        peer_vpc = self.optional_string("cassandraPeerVpcId", _VPC_ID, "a VPC id (vpc-...)")
        peer_tables = self.strings("cassandraPeerRouteTableIds", required=False)
        for table in peer_tables:
            if not _ROUTE_TABLE_ID.fullmatch(table):
                self.fail("cassandraPeerRouteTableIds", f"{table!r} does not look like a route table id")
        peering = self.optional_string(
            "cassandraPeeringConnectionId", _PEERING_ID, "a peering connection id (pcx-...)"
        )
        gateway = self.optional_string(
            "cassandraTransitGatewayId", _TRANSIT_GATEWAY_ID, "a Transit Gateway id (tgw-...)"
        )
        routes_exist = self.boolean("cassandraRoutesExist", False)
        blocks = [ipaddress.ip_network(c, strict=False) for c in _valid_cidrs(cidrs)]
        if existing_vpc is None:
            for key, value in (
                ("cassandraPeeringConnectionId", peering),
                ("cassandraRoutesExist", routes_exist),
            ):
                if value:
                    self.fail(
                        key,
                        "is only for an existing VPC (orderpipe:vpcId); a new VPC is peered with orderpipe:cassandraPeerVpcId",
                    )
            chosen = [
                key
                for key, value in (("cassandraPeerVpcId", peer_vpc), ("cassandraTransitGatewayId", gateway))
                if value
            ]
            if not chosen and not self._network_keys_invalid():
                self.problems.append(
                    "the new VPC has no network path to orderpipe:cassandraCidrs, so the schema custom resource "
                    "could not reach Cassandra during the deploy: set orderpipe:cassandraPeerVpcId and "
                    "orderpipe:cassandraPeerRouteTableIds (VPC peering), or orderpipe:cassandraTransitGatewayId "
                    "(Transit Gateway), or deploy into an existing VPC (orderpipe:vpcId); see docs/deploy.md"
                )
            if len(chosen) > 1:
                self.problems.append(
                    f"set only one network path, not {' and '.join(PREFIX + k for k in chosen)}"
                )
            if peer_vpc and not peer_tables:
                self.fail(
                    "cassandraPeerRouteTableIds",
                    "is not set: the Cassandra side needs the return route to newVpcCidr",
                )
            if peer_tables and not peer_vpc:
                self.fail("cassandraPeerRouteTableIds", "is only used with orderpipe:cassandraPeerVpcId")
            try:
                own = ipaddress.ip_network(new_vpc_cidr, strict=False)
                for block in blocks:
                    if own.overlaps(block):
                        self.fail(
                            "newVpcCidr",
                            f"{new_vpc_cidr} overlaps orderpipe:cassandraCidrs {block}: routed networks must not overlap",
                        )
            except ValueError:
                pass  # reported by newVpcCidr's own check
            return NetworkPath(
                peer_vpc_id=peer_vpc, peer_route_table_ids=peer_tables, transit_gateway_id=gateway
            )
        for key, given in (
            ("cassandraPeerVpcId", bool(peer_vpc)),
            ("cassandraPeerRouteTableIds", bool(peer_tables)),
        ):
            if given:
                self.fail(
                    key,
                    "is only for a new VPC; with orderpipe:vpcId use orderpipe:cassandraPeeringConnectionId",
                )
        try:
            own = ipaddress.ip_network(existing_vpc.cidr, strict=False)
            same_vpc = bool(blocks) and all(block.subnet_of(own) for block in blocks)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            same_vpc = False
        chosen = [
            key
            for key, value in (
                ("cassandraPeeringConnectionId", peering),
                ("cassandraTransitGatewayId", gateway),
                ("cassandraRoutesExist", routes_exist),
            )
            if value
        ]
        if same_vpc and chosen:
            self.problems.append(
                f"orderpipe:cassandraCidrs lie inside orderpipe:vpcCidr (the VPC's local route reaches them): "
                f"drop {' and '.join(PREFIX + k for k in chosen)}"
            )
        elif not same_vpc and not chosen and not self._network_keys_invalid():
            self.problems.append(
                "the existing VPC has no declared network path to orderpipe:cassandraCidrs: set "
                "orderpipe:cassandraPeeringConnectionId or orderpipe:cassandraTransitGatewayId (the stack adds "
                "the routes to vpcRouteTableIds), or orderpipe:cassandraRoutesExist=true if those route tables "
                "already route them; see docs/deploy.md"
            )
        elif len(chosen) > 1:
            self.problems.append(f"set only one network path, not {' and '.join(PREFIX + k for k in chosen)}")
        return NetworkPath(
            peering_connection_id=peering,
            transit_gateway_id=gateway,
            routes_exist=routes_exist,
            same_vpc=same_vpc,
        )

    def _network_keys_invalid(self) -> bool:
        """A malformed network key was already reported: do not also report it as missing."""
        names = ("cassandraPeerVpcId", "cassandraPeeringConnectionId", "cassandraTransitGatewayId")
        return any(problem.startswith(tuple(PREFIX + n + ":" for n in names)) for problem in self.problems)

    def existing_vpc(self) -> ExistingVpc | None:
        vpc_id = self.raw("vpcId")
        if vpc_id is None:
            for key in ("vpcCidr", "vpcSubnetIds", "vpcAvailabilityZones", "vpcRouteTableIds"):
                if self.raw(key) is not None:
                    self.fail(key, "is only used with orderpipe:vpcId, which is not set")
            return None
        if not isinstance(vpc_id, str) or not re.fullmatch(r"vpc-[0-9a-f]{8,17}", vpc_id):
            self.fail("vpcId", f"must look like vpc-0123456789abcdef0, got {vpc_id!r}")
        cidr = self.raw("vpcCidr")
        try:
            ipaddress.ip_network(str(cidr), strict=True)
        except ValueError:
            self.fail("vpcCidr", f"must be the VPC's CIDR block, got {cidr!r}")
        subnets = self.strings("vpcSubnetIds", required=True)
        zones = self.strings("vpcAvailabilityZones", required=True)
        route_tables = self.strings("vpcRouteTableIds", required=True)
        for subnet in subnets:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", subnet):
                self.fail("vpcSubnetIds", f"{subnet!r} does not look like a subnet id")
        if subnets and not (len(subnets) == len(zones) == len(route_tables)):
            self.fail(
                "vpcSubnetIds",
                "vpcSubnetIds, vpcAvailabilityZones and vpcRouteTableIds must have the same length "
                f"(got {len(subnets)}, {len(zones)}, {len(route_tables)})",
            )
        return ExistingVpc(
            vpc_id=str(vpc_id),
            cidr=str(cidr),
            subnet_ids=subnets,
            availability_zones=zones,
            route_table_ids=route_tables,
        )
