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
EXISTING_VPC = {
    "orderpipe:vpcId": "vpc-0123456789abcdef0",
    "orderpipe:vpcCidr": "10.30.0.0/16",
    "orderpipe:vpcSubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "orderpipe:vpcAvailabilityZones": ["eu-west-1a", "eu-west-1b"],
    "orderpipe:vpcRouteTableIds": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef1"],
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


def require_tool(name: str) -> str:
    """A command-line tool the test needs: missing is a skip locally and a failure under CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is required under CI but was not found on PATH")
        pytest.skip(f"{name} not found on PATH")
    return path
