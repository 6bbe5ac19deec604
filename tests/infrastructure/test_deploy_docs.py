"""The commands in the docs work when pasted (finding 9): every `npx cdk deploy` in docs/deploy.md and
the README is run through the pinned CDK CLI with cdk.json as shipped, `deploy` replaced by `synth`,
and the API URL is used the way the output gives it.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.infrastructure.conftest import NAMED_WITHOUT_A_CLUSTER, REPO_ROOT, Synthesized, cdk_cli

DEPLOY_DOC = (REPO_ROOT / "docs" / "deploy.md").read_text()
README = (REPO_ROOT / "README.md").read_text()


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, re.S)


def deploy_commands(markdown: str) -> list[str]:
    """Each `npx cdk deploy` command of the shell blocks, with its continuation lines."""
    return [
        command
        for block in shell_blocks(markdown)
        for command in re.findall(r"^npx cdk deploy(?:.*\\\n)*.*$", block, re.M)
    ]


SHELL_BLOCKS = "\n".join(shell_blocks(DEPLOY_DOC))
EXAMPLES = re.findall(r"### ([ABC])\. .*?```bash\n(npx cdk deploy .*?)```", DEPLOY_DOC, re.S)
DOCUMENTED = {f"deploy.md:{i}": c for i, c in enumerate(deploy_commands(DEPLOY_DOC), 1)} | {
    f"README:{i}": c for i, c in enumerate(deploy_commands(README), 1)
}


def words_of(command: str) -> list[str]:
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:3] == ["npx", "cdk", "deploy"]
    return words


def context_of(command: str) -> dict[str, Any]:
    """The context a pasted command gives the app: each `-c key=value`, as the CLI passes it (strings)."""
    context = {}
    for flag, value in itertools.pairwise(words_of(command)):
        if flag == "-c":
            key, _, text = value.partition("=")
            context[key] = text
    return context


@pytest.fixture(scope="module")
def cli_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cloud assembly directory for every command: the function bundles are built once, reused after."""
    return tmp_path_factory.mktemp("cdk-docs")


_synthesized: dict[str, dict[str, Any]] = {}


def synth_as_pasted(command: str, outdir: Path) -> dict[str, Any]:
    """`command` with `deploy` replaced by `synth`, run by the CDK CLI; the template it wrote."""
    if command not in _synthesized:
        # Given the command exactly as documented (deploy-only options are ignored by synth, with a warning)
        arguments = ["synth", "--quiet", "--output", str(outdir), *words_of(command)[3:]]
        result = cdk_cli(arguments)
        # then it synthesizes over cdk.json as shipped ...
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
        # ... without an unacknowledged cdk-nag finding (the CLI's synth runs the app with cdk-nag).
        report = (outdir / "validation-report.json").read_text()
        assert json.loads(report)["pluginReports"] == [], report[:3000]
        _synthesized[command] = json.loads((outdir / "OrderPipe.template.json").read_text())
    return _synthesized[command]


def counts(template: dict[str, Any]) -> Counter[str]:
    return Counter(resource["Type"] for resource in template["Resources"].values())


def test_the_docs_document_a_deploy_command_for_each_option() -> None:
    assert [letter for letter, _ in EXAMPLES] == ["A", "B", "C"]
    assert len(DOCUMENTED) == 7, list(DOCUMENTED)


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_each_documented_deploy_command_synthesizes_through_the_cdk_cli(name: str, cli_outdir: Path) -> None:
    # Given a documented command pasted as is, when the CDK CLI synthesizes it (asserted in the helper),
    template = synth_as_pasted(DOCUMENTED[name], cli_outdir)
    # then the stack names the backend the command chose.
    backend = context_of(DOCUMENTED[name]).get("orderpipe:cassandraBackend", "self-managed")
    assert template["Outputs"]["CassandraBackend"]["Value"] == backend


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
    letter: str, expected: dict[str, int], cli_outdir: Path
) -> None:
    # Given the example exactly as docs/deploy.md prints it, when the CLI synthesizes it,
    (command,) = [command for example, command in EXAMPLES if example == letter]
    found = counts(synth_as_pasted(command, cli_outdir))
    # then the network path is the one the section describes.
    assert {kind: found[kind] for kind in expected} == expected


def test_the_readme_command_peers_a_new_vpc_and_reads_the_secret(cli_outdir: Path) -> None:
    (command,) = deploy_commands(README)
    template = synth_as_pasted(command, cli_outdir)
    found = counts(template)
    assert (found["AWS::EC2::VPC"], found["AWS::EC2::VPCPeeringConnection"]) == (1, 1)
    assert "arn:aws:secretsmanager:" in json.dumps(template)


BACKEND_COMMANDS = [command for command in DOCUMENTED.values() if "cassandraBackend=" in command]


def test_each_managed_backend_has_a_documented_deploy_command() -> None:
    backends = sorted({context_of(command)["orderpipe:cassandraBackend"] for command in BACKEND_COMMANDS})
    assert backends == ["astra", "keyspaces"]
    assert any("keyspacesAuth=service-specific" in command for command in BACKEND_COMMANDS)


@pytest.mark.parametrize("command", BACKEND_COMMANDS, ids=lambda c: shlex.split(c)[4].split("=", 1)[1])
def test_each_documented_backend_command_places_the_functions_for_its_backend(
    command: str, cli_outdir: Path
) -> None:
    # Given a backend's command exactly as docs/deploy.md prints it, when the CLI synthesizes it,
    context = context_of(command)
    vpcs = counts(synth_as_pasted(command, cli_outdir))["AWS::EC2::VPC"]
    # then Astra gets no VPC, an existing VPC is imported, and otherwise one is created.
    expected_vpcs = (
        0 if context["orderpipe:cassandraBackend"] == "astra" or "orderpipe:vpcId" in context else 1
    )
    assert vpcs == expected_vpcs


def test_a_deploy_that_names_no_cluster_stops_at_synth_naming_the_missing_keys(tmp_path: Path) -> None:
    # Given cdk.json as shipped and no -c option (a pasted command that lost its options),
    result = cdk_cli(["synth", "--quiet", "--output", str(tmp_path)], timeout=300)
    # when the CLI synthesizes, then it fails before building anything, with one message naming
    # each key to set and the managed alternatives.
    assert result.returncode != 0
    assert not (tmp_path / "OrderPipe.template.json").exists()
    (message,) = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert message.startswith("  - no Cassandra cluster is named"), result.stderr
    for named in NAMED_WITHOUT_A_CLUSTER:
        assert named in message


def test_api_url_is_joined_without_a_double_slash(default_synth: Synthesized) -> None:
    # The ApiUrl output is the stage URL, which ends in "/" ...
    url = default_synth.json["Outputs"]["ApiUrl"]["Value"]["Fn::Join"][1]
    assert url[-1] == "/"
    # ... so the docs' commands append paths without another slash.
    assert "${API_URL}orders" in SHELL_BLOCKS
    assert "$API_URL/" not in SHELL_BLOCKS and "${API_URL}/" not in SHELL_BLOCKS


# curl reads the body of `-d @name`, `--data @name` and `--data-binary @name` from the file `name`.
POSTED_FILES = re.compile(r"(?:-d|--data|--data-binary)\s+@([^\s'\"]+)")
HEREDOC = r"^cat > {name} <<'(?P<tag>\w+)'\n(?P<body>.*?)^(?P=tag)$"


def created_by_the_doc(name: str, before: str) -> str | None:
    """The content of `name` as a heredoc earlier in the guide's shell blocks writes it, if one does."""
    found = re.search(HEREDOC.format(name=re.escape(name)), before, re.M | re.S)
    return found["body"] if found else None


def test_every_file_a_documented_command_posts_is_created_by_the_doc_first() -> None:
    # Given the guide's shell blocks in order, when a command posts a file (curl -d @file),
    posted = list(POSTED_FILES.finditer(SHELL_BLOCKS))
    assert posted, "the guide posts no order any more: update this test"
    for match in posted:
        # then an earlier command of the guide writes that file, so the commands work when pasted.
        assert created_by_the_doc(match[1], SHELL_BLOCKS[: match.start()]) is not None, (
            f"-d @{match[1]}: no earlier command of docs/deploy.md creates {match[1]}"
        )


def test_the_posted_order_is_the_api_descriptions_example() -> None:
    # Given the order the guide writes to order.json,
    body = created_by_the_doc("order.json", SHELL_BLOCKS)
    assert body is not None
    # then it is the OpenAPI description's example request (kept valid by the API's own tests).
    openapi = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    assert json.loads(body) == openapi["components"]["schemas"]["OrderRequest"]["examples"][0]
