"""cdk-nag (AwsSolutions) with zero unsuppressed findings and cfn-lint with zero errors, per configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infrastructure.conftest import VARIANTS, synthesize


@pytest.fixture(params=list(VARIANTS))
def nagged(request: pytest.FixtureRequest, nagged_outdirs: dict[str, Path]) -> Path:
    """One variant's cloud assembly, synthesized with cdk-nag (synth raised on any unsuppressed finding)."""
    return nagged_outdirs[request.param]


def test_cdk_nag_has_no_unsuppressed_findings(nagged: Path) -> None:
    # Synth already raised ValidationFailed on any unsuppressed finding; the report must be empty too.
    report = json.loads((nagged / "validation-report.json").read_text())
    assert report["pluginReports"] == [], json.dumps(report, indent=1)[:5000]


# Every AwsSolutions rule this stack acknowledges; a new suppression must be added here on purpose.
EXPECTED_SUPPRESSIONS = {
    "AwsSolutions-L1",
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::<FunctionsSchema2EEFC43E.Arn>:*]",
    "AwsSolutions-APIG2",
    "AwsSolutions-APIG3",
    "AwsSolutions-COG4",
    # The producers' user pool has app clients only (client-credentials grant), no users.
    "AwsSolutions-COG2",
    "AwsSolutions-COG3",
    "AwsSolutions-COG8",
}


@pytest.mark.parametrize(
    "variant",
    ["default_new_vpc_peering", "api_cloudwatch_role_created_tls_server_name_ca_secret_protocol_pinned"],
)
def test_every_suppression_is_known_and_has_a_reason(variant: str) -> None:
    synth = synthesize(VARIANTS[variant])
    found: dict[str, list[str]] = {}
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != "aws:cdk:acknowledged-rules":
                continue
            for rule, reason in entry.data.items():
                if rule.startswith("Annotation::AwsSolutions-"):
                    assert len(reason) >= 20, f"{construct.node.path}: {rule} has no real reason"
                    found.setdefault(rule.removeprefix("Annotation::"), []).append(construct.node.path)
    expected = set(EXPECTED_SUPPRESSIONS)
    if VARIANTS[variant].get("orderpipe:apiGatewayCloudWatchRole") == "create":
        # Only when this stack creates the account-level API Gateway role (opt-in).
        expected.add(
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]"
        )
    assert set(found) == expected
    # X-Ray's wildcard resource is acknowledged per function, never stack-wide.
    assert all(
        "/Functions/" in path or "/Network/" in path for path in found["AwsSolutions-IAM5[Resource::*]"]
    )


def test_cfn_lint_has_no_errors(nagged: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--format",
            "parseable",
            str(nagged / "OrderPipe.template.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # cfn-lint exit code bits: 1 fatal, 2 error, 4 warning, 8 informational.
    assert result.returncode & 3 == 0, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if ":E" in line]
    assert not errors, "\n".join(errors)
