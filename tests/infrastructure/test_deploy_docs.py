"""The commands in docs/deploy.md work when pasted (finding 9): each `npx cdk deploy` example is
synthesized with exactly its `-c` options, and the API URL is used the way the output gives it.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.infrastructure.conftest import REPO_ROOT, Synthesized, synthesize

DEPLOY_DOC = (REPO_ROOT / "docs" / "deploy.md").read_text()
SHELL_BLOCKS = "\n".join(re.findall(r"```bash\n(.*?)```", DEPLOY_DOC, re.S))
EXAMPLES = re.findall(r"### ([ABC])\. .*?```bash\n(npx cdk deploy .*?)```", DEPLOY_DOC, re.S)


def context_of(command: str) -> dict[str, Any]:
    """The context a pasted command gives the app: each `-c key=value`, as the CLI passes it (strings)."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:3] == ["npx", "cdk", "deploy"]
    context = {}
    for flag, value in itertools.pairwise(words):
        if flag == "-c":
            key, _, text = value.partition("=")
            context[key] = text
    return context


def counts(synth: Synthesized) -> Counter[str]:
    return Counter(resource["Type"] for resource in synth.json["Resources"].values())


def test_the_three_network_options_are_documented() -> None:
    assert [letter for letter, _ in EXAMPLES] == ["A", "B", "C"]


@pytest.mark.parametrize(
    ("letter", "expected"),
    [
        # Peering: a route per function subnet (2 AZs) and the return route per cluster route table (2).
        ("A", {"AWS::EC2::VPC": 1, "AWS::EC2::VPCPeeringConnection": 1, "AWS::EC2::Route": 4}),
        ("B", {"AWS::EC2::VPC": 1, "AWS::EC2::TransitGatewayAttachment": 1, "AWS::EC2::Route": 2}),
        # Existing VPC whose routes and endpoints exist: the stack adds neither.
        ("C", {"AWS::EC2::VPC": 0, "AWS::EC2::Route": 0, "AWS::EC2::VPCEndpoint": 0}),
    ],
)
def test_each_documented_deploy_command_synthesizes_its_network_path(
    letter: str, expected: dict[str, int]
) -> None:
    # Given the example exactly as docs/deploy.md prints it, when the app is synthesized with its
    # options over cdk.json, then it builds and the network path is the one the section describes.
    (command,) = [command for example, command in EXAMPLES if example == letter]
    synth = synthesize(context_of(command))
    found = counts(synth)
    assert {kind: found[kind] for kind in expected} == expected


def test_api_url_is_joined_without_a_double_slash(default_synth: Synthesized) -> None:
    # The ApiUrl output is the stage URL, which ends in "/" ...
    url = default_synth.json["Outputs"]["ApiUrl"]["Value"]["Fn::Join"][1]
    assert url[-1] == "/"
    # ... so the docs' commands append paths without another slash.
    assert "${API_URL}orders" in SHELL_BLOCKS
    assert "$API_URL/" not in SHELL_BLOCKS and "${API_URL}/" not in SHELL_BLOCKS


BACKEND_COMMANDS = [
    command
    for command in re.findall(r"```bash\n(npx cdk deploy .*?)```", DEPLOY_DOC, re.S)
    if "cassandraBackend=" in command
]


def test_each_managed_backend_has_a_documented_deploy_command() -> None:
    backends = sorted({context_of(command)["orderpipe:cassandraBackend"] for command in BACKEND_COMMANDS})
    assert backends == ["astra", "keyspaces"]
    assert any("keyspacesAuth=service-specific" in command for command in BACKEND_COMMANDS)


@pytest.mark.parametrize("command", BACKEND_COMMANDS, ids=lambda c: shlex.split(c)[4].split("=", 1)[1])
def test_each_documented_backend_command_synthesizes_with_cdk_nag(command: str, tmp_path: Path) -> None:
    # Given a backend's command exactly as docs/deploy.md prints it (over cdk.json, which describes a
    # self-managed cluster), when the app is synthesized with cdk-nag, then it builds without an
    # unacknowledged finding, for the backend the command names.
    context = context_of(command)
    synth = synthesize(context, nag=True, outdir=tmp_path)
    assert synth.json["Outputs"]["CassandraBackend"]["Value"] == context["orderpipe:cassandraBackend"]
    vpcs = counts(synth)["AWS::EC2::VPC"]
    expected_vpcs = (
        0 if context["orderpipe:cassandraBackend"] == "astra" or "orderpipe:vpcId" in context else 1
    )
    assert vpcs == expected_vpcs
