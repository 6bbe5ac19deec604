"""Synthesis helpers for the infrastructure tests: one synth per module (module-scoped fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk import assertions

from app import build_app
from stacks.example_context import EXAMPLE_CONTEXT
from stacks.orderpipe_stack import OrderPipeStack

REPO_ROOT = Path(__file__).resolve().parents[2]
# cdk.json as shipped (feature flags, no cluster) ...
CDK_JSON_CONTEXT: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
# ... plus the example cluster, as `make synth` passes it: what every synthesis here starts from.
BASE_CONTEXT: dict[str, Any] = {**CDK_JSON_CONTEXT, **EXAMPLE_CONTEXT}

# What synth names when no cluster is given (cdk.json as shipped): the keys to set, and the managed backends.
NAMED_WITHOUT_A_CLUSTER = tuple(
    "orderpipe:" + key
    for key in (
        "cassandraContactPoints",
        "cassandraLocalDc",
        "cassandraCidrs",
        "cassandraPeerVpcId",
        "cassandraTransitGatewayId",
        "vpcId",
        "cassandraBackend=keyspaces",
    )
)
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orderpipe/cassandra-AbCdEf"
CA_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orderpipe/cassandra-ca-GhIjKl"
KMS_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/12345678-1234-1234-1234-123456789012"
# A CA certificate made for these tests (no key exists for it): only its parsing and shipping are tested.
CA_FILE = "tests/infrastructure/data/cluster-ca.pem"
PEERING_ID = "pcx-0123456789abcdef0"
TRANSIT_GATEWAY_ID = "tgw-0123456789abcdef0"
# The example context peers the new VPC; these overrides remove that network path.
NO_PEERING: dict[str, Any] = {
    "orderpipe:cassandraPeerVpcId": None,
    "orderpipe:cassandraPeerRouteTableIds": None,
}
EXISTING_VPC: dict[str, Any] = {
    "orderpipe:vpcId": "vpc-0123456789abcdef0",
    "orderpipe:vpcCidr": "10.30.0.0/16",
    "orderpipe:vpcSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "orderpipe:vpcAvailabilityZones": ["eu-west-1a", "eu-west-1b"],
    "orderpipe:vpcRouteTableIds": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"],
    **NO_PEERING,
    "orderpipe:cassandraPeeringConnectionId": PEERING_ID,
}
TLS_WITH_CA_FILE: dict[str, Any] = {
    "orderpipe:cassandraTls": True,
    "orderpipe:cassandraTlsCaFile": CA_FILE,
    "orderpipe:cassandraTlsHostnameCheck": "ip_san",
}

ASTRA_BUNDLE_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orderpipe/astra-bundle-MnOpQr"
ASTRA_TOKEN_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orderpipe/astra-token-StUvWx"
# The example context describes a self-managed cluster; a managed backend unsets those keys.
NO_SELF_MANAGED_CLUSTER: dict[str, Any] = {
    **NO_PEERING,
    "orderpipe:cassandraContactPoints": None,
    "orderpipe:cassandraLocalDc": None,
    "orderpipe:cassandraCidrs": None,
}
KEYSPACES: dict[str, Any] = {**NO_SELF_MANAGED_CLUSTER, "orderpipe:cassandraBackend": "keyspaces"}
ASTRA: dict[str, Any] = {
    **NO_SELF_MANAGED_CLUSTER,
    "orderpipe:cassandraBackend": "astra",
    "orderpipe:astraBundleSecretArn": ASTRA_BUNDLE_SECRET_ARN,
    "orderpipe:cassandraSecretArn": ASTRA_TOKEN_SECRET_ARN,
}

# Every configuration docs/deploy.md documents, synthesized with cdk-nag and judged by cfn-lint and
# checkov (tests/infrastructure/test_checks.py, test_checkov.py).
VARIANTS: dict[str, dict[str, Any]] = {
    "default_new_vpc_peering": {},
    "new_vpc_transit_gateway_secret_kms_tls_ca_file_email": {
        **NO_PEERING,
        "orderpipe:cassandraTransitGatewayId": TRANSIT_GATEWAY_ID,
        "orderpipe:cassandraSecretArn": SECRET_ARN,
        "orderpipe:cassandraSecretKmsKeyArn": KMS_KEY_ARN,
        **TLS_WITH_CA_FILE,
        "orderpipe:alarmEmail": "ops@example.com",
    },
    "existing_vpc_peering_secret": {"orderpipe:cassandraSecretArn": SECRET_ARN, **EXISTING_VPC},
    "existing_vpc_routes_exist_without_endpoints": {
        **EXISTING_VPC,
        "orderpipe:cassandraPeeringConnectionId": None,
        "orderpipe:cassandraRoutesExist": True,
        "orderpipe:cassandraSecretArn": SECRET_ARN,
        "orderpipe:createVpcEndpoints": False,
    },
    "api_cloudwatch_role_created_tls_server_name_ca_secret_protocol_pinned": {
        "orderpipe:apiGatewayCloudWatchRole": "create",
        "orderpipe:cassandraTls": True,
        "orderpipe:cassandraTlsHostnameCheck": "server_name",
        "orderpipe:cassandraTlsServerName": "cassandra.internal.example",
        "orderpipe:cassandraTlsCaSecretArn": CA_SECRET_ARN,
        "orderpipe:cassandraProtocolVersion": 4,
    },
    "keyspaces_new_vpc_sigv4": KEYSPACES,
    "keyspaces_existing_vpc_service_specific_secret_kms_without_endpoints": {
        **KEYSPACES,
        **EXISTING_VPC,
        "orderpipe:cassandraPeeringConnectionId": None,
        "orderpipe:createVpcEndpoints": False,
        "orderpipe:keyspacesAuth": "service-specific",
        "orderpipe:cassandraSecretArn": SECRET_ARN,
        "orderpipe:cassandraSecretKmsKeyArn": KMS_KEY_ARN,
    },
    "astra_outside_the_vpc": ASTRA,
    # Producers signing with SigV4 (AWS_IAM on every method, no authorizer or user pool) and SnapStart
    # (published versions, aliases `live` behind the API and the event source).
    "auth_iam_read_all_principals_snapstart": {
        "orderpipe:auth": "iam",
        "orderpipe:readAllPrincipals": ["arn:aws:iam::123456789012:role/auditor"],
        "orderpipe:snapStart": True,
    },
    # Tokens from an external OIDC issuer: the authorizer, no Cognito user pool.
    "auth_external_issuer": {
        "orderpipe:authIssuer": "https://example.okta.com/oauth2/default",
        "orderpipe:authAudience": "api://orderpipe",
        "orderpipe:authJwksUrl": "https://example.okta.com/oauth2/default/v1/keys",
        "orderpipe:authScopeClaim": "scp",
    },
}


@dataclass
class Synthesized:
    app: cdk.App
    stack: OrderPipeStack
    template: assertions.Template
    assembly: cdk.cx_api.CloudAssembly | None = None

    @property
    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())


def synthesize(
    overrides: dict[str, Any] | None = None,
    *,
    bundling: bool = False,
    nag: bool = False,
    outdir: Path | None = None,
) -> Synthesized:
    """The app as `make synth` builds it (cdk.json and the example cluster), with context overrides.

    bundling=False skips building the function assets (fast); nag=True runs cdk-nag at synth, which
    raises on any unsuppressed finding.
    """
    context = {**BASE_CONTEXT, **(overrides or {})}
    if not bundling:
        context["aws:cdk:bundling-stacks"] = []
    app = cdk.App(context=context, outdir=str(outdir) if outdir else None)
    stack = build_app(app, nag=nag)
    assembly = app.synth() if (nag or outdir) else None
    template = assertions.Template.from_stack(stack)
    return Synthesized(app=app, stack=stack, template=template, assembly=assembly)


@pytest.fixture(scope="module")
def default_synth() -> Synthesized:
    return synthesize()


@pytest.fixture(scope="session")
def nagged_outdirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each variant synthesized once with cdk-nag into its own cloud assembly directory.

    Synth raises ValidationFailed on any unsuppressed cdk-nag finding, so reaching the return is
    itself that check; the tests read the templates and reports from these directories.
    """
    outdirs = {}
    for name, overrides in VARIANTS.items():
        outdir = tmp_path_factory.mktemp(f"cdk-{name}")
        synthesize(overrides, nag=True, outdir=outdir)
        outdirs[name] = outdir
    return outdirs


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_tool(name: str) -> str:
    """A command-line tool the test needs: missing is a skip locally and a failure under CI."""
    path = shutil.which(name)
    if path is None:
        if in_ci():
            pytest.fail(f"{name} is required under CI but was not found on PATH")
        pytest.skip(f"{name} not found on PATH")
    return path


def offline_environment() -> dict[str, str]:
    """This environment without AWS credentials, config or metadata service: synth must need none."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in {"CDK_CONTEXT_JSON", "CDK_OUTDIR"}
    }
    environment.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_CONFIG_FILE="/dev/null",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        CDK_DISABLE_VERSION_CHECK="true",
    )
    return environment


def cdk_cli(arguments: list[str], *, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The pinned CDK CLI (`npx cdk ...`) run in the repository with cdk.json as shipped, offline."""
    require_tool("node")
    npx = require_tool("npx")
    assert (REPO_ROOT / "node_modules" / "aws-cdk").is_dir(), "the pinned CDK CLI is not installed: npm ci"
    return subprocess.run(
        [npx, "--no-install", "cdk", *arguments],
        cwd=REPO_ROOT,
        env=offline_environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
