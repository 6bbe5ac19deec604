"""Synthesis helpers for the infrastructure tests: one synth per module (module-scoped fixtures)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk import assertions

from app import build_app
from stacks.orderpipe_stack import OrderPipeStack

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_JSON_CONTEXT: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orderpipe/cassandra-AbCdEf"
CA_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orderpipe/cassandra-ca-GhIjKl"
KMS_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/12345678-1234-1234-1234-123456789012"
# A CA certificate made for these tests (no key exists for it): only its parsing and shipping are tested.
CA_FILE = "tests/infrastructure/data/cluster-ca.pem"
PEERING_ID = "pcx-0123456789abcdef0"
TRANSIT_GATEWAY_ID = "tgw-0123456789abcdef0"
# cdk.json's example peers the new VPC; these overrides remove that network path.
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
# cdk.json's example describes a self-managed cluster; a managed backend unsets those keys.
NO_SELF_MANAGED_CLUSTER: dict[str, Any] = {
    **NO_PEERING,
    "orderpipe:cassandraContactPoints": None,
    "orderpipe:cassandraLocalDc": None,
    "orderpipe:cassandraCidrs": None,
    "orderpipe:cassandraReplication": None,
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
    """The app as `cdk synth` builds it from cdk.json, with context overrides.

    bundling=False skips building the function assets (fast); nag=True runs cdk-nag at synth, which
    raises on any unsuppressed finding.
    """
    context = {**CDK_JSON_CONTEXT, **(overrides or {})}
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
