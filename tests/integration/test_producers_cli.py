"""`orderpipe producers add|list|revoke` as an operator runs them: the installed command, in a process
of its own, against the session's moto server.

The identity resources are made as the local runtime makes them (devenv/orderpipe_devenv/aws/
identity.py); the pipeline is found as the command finds it: the state file of a running
`orderpipe run`, `--prefix` with `--endpoint-url`, or `--stack` (a CloudFormation stack in moto whose
outputs name the resources).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from orderpipe_devenv.aws.identity import AuthMode, create_identity_resources, create_user_pool
from orderpipe_ops import local_pipeline
from orderpipe_ops.local_pipeline import LocalPipeline
from tests.fixtures.aws import MotoServer

ORDERPIPE = Path(sys.executable).with_name("orderpipe")
API_URL = "http://127.0.0.1:9/"
TOKEN_URL = "http://127.0.0.1:9/oauth2/token"
ROLE_ARN = "arn:aws:iam::123456789012:role/acme-feed"


@dataclass(frozen=True)
class Identity:
    """The identity resources of one pipeline in moto, and clients to look at them."""

    prefix: str
    auth: AuthMode
    producers_table: str
    usage_plan_id: str
    user_pool_id: str | None
    dynamodb: Any
    apigateway: Any
    cognito: Any

    def stored(self) -> list[dict[str, Any]]:
        return list(self.dynamodb.scan(TableName=self.producers_table)["Items"])

    def key_enabled(self, key_id: str) -> bool:
        return bool(self.apigateway.get_api_key(apiKey=key_id)["enabled"])


def make_identity(
    moto_server: MotoServer, prefix: str, auth: AuthMode, *, table: str | None = None
) -> Identity:
    session = boto3.Session(region_name=moto_server.region)
    dynamodb = session.client("dynamodb", endpoint_url=moto_server.endpoint_url)
    apigateway = session.client("apigateway", endpoint_url=moto_server.endpoint_url)
    cognito = session.client("cognito-idp", endpoint_url=moto_server.endpoint_url)
    pool = create_user_pool(f"{prefix}-producers", cognito=cognito) if auth == "jwt" else None
    resources = create_identity_resources(
        prefix,
        auth=auth,
        dynamodb=dynamodb,
        apigateway=apigateway,
        cognito=cognito,
        api_url=API_URL,
        token_url=TOKEN_URL if pool else None,
        user_pool_id=pool,
    )
    return Identity(
        prefix=prefix,
        auth=auth,
        producers_table=resources.producers_table,
        usage_plan_id=resources.usage_plan_id,
        user_pool_id=pool,
        dynamodb=dynamodb,
        apigateway=apigateway,
        cognito=cognito,
    )


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def orderpipe(*args: str, env: Mapping[str, str]) -> Ran:
    done = subprocess.run(
        [str(ORDERPIPE), "producers", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def printed(out: str, label: str) -> str:
    """The value of a `label:   value` line of `add`'s instructions."""
    match = re.search(rf"^{re.escape(label)}:\s+(\S+)", out, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{out}"
    return match[1]


@pytest.fixture
def emulator_env(moto_server: MotoServer) -> dict[str, str]:
    """The environment of an operator pointing at the emulator ($AWS_ENDPOINT_URL: moto)."""
    return dict(os.environ)


@pytest.fixture
def no_pipeline_env(moto_server: MotoServer, tmp_path: Path) -> dict[str, str]:
    """An operator's environment with no endpoint, profile or running pipeline configured."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env[local_pipeline.STATE_DIR_VARIABLE] = str(tmp_path / "state")
    return env


@pytest.fixture
def running_pipeline(moto_server: MotoServer, aws_name: str, no_pipeline_env: dict[str, str]) -> Identity:
    """A jwt-mode local pipeline whose state file says it runs (this test's process stands for it)."""
    identity = make_identity(moto_server, aws_name, "jwt")
    local_pipeline.write(
        LocalPipeline(
            pid=os.getpid(),
            api_url=API_URL,
            region=moto_server.region,
            access_key_id="local",
            secret_access_key="local",  # moto takes any
            aws_endpoint_url=moto_server.endpoint_url,
            sqs_endpoint_url=moto_server.endpoint_url,
            queue_url=f"{moto_server.endpoint_url}/123456789012/{aws_name}-orders",
            dlq_url=f"{moto_server.endpoint_url}/123456789012/{aws_name}-orders-dlq",
            cassandra="127.0.0.1:9042 (not used here)",
            resource_prefix=aws_name,
        ),
        Path(no_pipeline_env[local_pipeline.STATE_DIR_VARIABLE]) / local_pipeline.FILE_NAME,
    )
    return identity


# --- the local pipeline, found by its state file (jwt) -------------------------------------------


def test_add_finds_the_running_pipeline_and_prints_a_working_client_credential(
    running_pipeline: Identity, no_pipeline_env: dict[str, str]
) -> None:
    # Given a running local pipeline in jwt mode and no option naming one
    # When the operator adds producer acme
    ran = orderpipe("add", "acme", env=no_pipeline_env)
    # Then it says which pipeline it used and prints the producer's client credentials and token URL
    assert ran.code == 0, ran.err
    assert ran.err.startswith(f"pipeline: the local pipeline of `orderpipe run` (pid {os.getpid()}")
    assert printed(ran.out, "producer") == "acme"
    assert printed(ran.out, "token URL") == TOKEN_URL
    client_id, secret = printed(ran.out, "client id"), printed(ran.out, "client secret")
    assert f"curl -s -u '{client_id}:{secret}' -d grant_type=client_credentials" in ran.out
    # ...which are a real app client of the pipeline's user pool (client credentials, the default scopes)
    client = running_pipeline.cognito.describe_user_pool_client(
        UserPoolId=running_pipeline.user_pool_id, ClientId=client_id
    )["UserPoolClient"]
    assert client["ClientSecret"] == secret
    assert client["AllowedOAuthFlows"] == ["client_credentials"]
    assert set(client["AllowedOAuthScopes"]) == {"orders/write", "orders/read"}
    # ...and the producers table maps the client to acme, active, with a key of the pipeline's usage plan
    [row] = running_pipeline.stored()
    assert (row["principal"]["S"], row["producer"]["S"], row["status"]["S"]) == (client_id, "acme", "active")
    plan_keys = running_pipeline.apigateway.get_usage_plan_keys(usagePlanId=running_pipeline.usage_plan_id)
    assert [key["id"] for key in plan_keys["items"]] == [row["api_key_id"]["S"]]
    # ...and the secret is not stored
    assert secret not in json.dumps(row)


def test_list_shows_the_producers_and_revoke_refuses_them(
    running_pipeline: Identity, no_pipeline_env: dict[str, str]
) -> None:
    # Given two producers added through the command
    added = [orderpipe("add", name, env=no_pipeline_env) for name in ("acme", "globex")]
    assert [ran.code for ran in added] == [0, 0]
    acme_client = printed(added[0].out, "client id")
    # When the operator lists them
    listed = orderpipe("list", "--json", env=no_pipeline_env)
    table = orderpipe("list", env=no_pipeline_env)
    # Then both are there, active, in JSON and in the table
    assert listed.code == table.code == 0
    assert [(p["producer"], p["status"]) for p in json.loads(listed.out)] == [
        ("acme", "active"),
        ("globex", "active"),
    ]
    assert re.search(rf"acme\s.*{acme_client}\s.*active", table.out)
    # When acme is revoked
    revoked = orderpipe("revoke", "acme", env=no_pipeline_env)
    # Then the command says so, the table marks it revoked, its key is disabled and its client is gone
    assert revoked.code == 0, revoked.err
    assert revoked.out.startswith(f"revoked acme (principal {acme_client}) at ")
    rows = {row["producer"]["S"]: row for row in running_pipeline.stored()}
    assert rows["acme"]["status"]["S"] == "revoked" and rows["globex"]["status"]["S"] == "active"
    assert not running_pipeline.key_enabled(rows["acme"]["api_key_id"]["S"])
    assert running_pipeline.key_enabled(rows["globex"]["api_key_id"]["S"])
    with pytest.raises(running_pipeline.cognito.exceptions.ResourceNotFoundException):
        running_pipeline.cognito.describe_user_pool_client(
            UserPoolId=running_pipeline.user_pool_id, ClientId=acme_client
        )
    # ...and the list shows it revoked
    states = {
        p["producer"]: p["status"] for p in json.loads(orderpipe("list", "--json", env=no_pipeline_env).out)
    }
    assert states == {"acme": "revoked", "globex": "active"}


def test_operator_mistakes_are_one_line_and_exit_2(
    running_pipeline: Identity, no_pipeline_env: dict[str, str]
) -> None:
    # Given a running local pipeline with producer acme
    assert orderpipe("add", "acme", env=no_pipeline_env).code == 0
    # When the operator adds acme again, a name with a space, or revokes someone unknown
    again = orderpipe("add", "acme", env=no_pipeline_env)
    spaced = orderpipe("add", "no spaces", env=no_pipeline_env)
    unknown = orderpipe("revoke", "nobody", env=no_pipeline_env)
    # Then each exits 2 with an error line saying what is wrong, and nothing more is stored
    assert (again.code, spaced.code, unknown.code) == (2, 2, 2)
    assert "error: producer 'acme' exists and is active (--rotate adds a second credential" in again.err
    assert "error: producer name 'no spaces' must match" in spaced.err
    assert "error: no active producer named 'nobody'" in unknown.err
    assert "Traceback" not in again.err + spaced.err + unknown.err
    assert len(running_pipeline.stored()) == 1


def test_without_a_running_pipeline_or_an_option_the_command_says_what_to_give(
    no_pipeline_env: dict[str, str],
) -> None:
    # Given no running pipeline, no endpoint and no stack
    # When the operator lists producers
    ran = orderpipe("list", env=no_pipeline_env)
    # Then it exits 2 naming what is missing
    assert ran.code == 2
    assert "no pipeline to talk to" in ran.err and "orderpipe run" in ran.err and "--stack" in ran.err


# --- the local pipeline in iam mode, named by --prefix ----------------------------------------------


def test_iam_add_on_the_local_pipeline_makes_an_iam_user_and_keeps_its_secret_for_the_verifier(
    moto_server: MotoServer, aws_name: str, emulator_env: dict[str, str]
) -> None:
    # Given a local iam-mode pipeline's identity resources
    identity = make_identity(moto_server, aws_name, "iam")
    where = ["--prefix", aws_name, "--endpoint-url", moto_server.endpoint_url]
    # When the operator adds a producer naming an outside principal
    outside = orderpipe("add", "acme", "--principal", ROLE_ARN, *where, env=emulator_env)
    # Then it is refused (the local verifier could never know its secret), nothing stored
    said = " ".join(outside.err.split())  # the error line wraps at the terminal's width
    assert outside.code == 2
    assert "leave out --principal" in said and "--stack" in said
    assert identity.stored() == []
    # When it adds the producer without a principal
    ran = orderpipe("add", "acme", *where, env=emulator_env)
    # Then an IAM user acme with an access key is made on the emulator and printed with the API key
    assert ran.code == 0, ran.err
    session = boto3.Session(region_name=moto_server.region)
    iam = session.client("iam", endpoint_url=moto_server.endpoint_url)
    user = iam.get_user(UserName="acme")["User"]
    access_key = printed(ran.out, "access key id")
    assert printed(ran.out, "principal") == user["Arn"]
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="acme")["AccessKeyMetadata"]] == [
        access_key
    ]
    secret, api_key = printed(ran.out, "secret key"), printed(ran.out, "API key")
    assert f"--user '{access_key}:{secret}' -H 'x-api-key: {api_key}'" in ran.out
    # ...the table maps the user to acme with that key, and the secret is kept where the verifier reads it
    [row] = identity.stored()
    assert (row["principal"]["S"], row["producer"]["S"], row["usage_key"]["S"]) == (
        user["Arn"],
        "acme",
        api_key,
    )
    secrets = session.client("secretsmanager", endpoint_url=moto_server.endpoint_url)
    kept = json.loads(
        secrets.get_secret_value(SecretId=f"{aws_name}-iam-credentials/{access_key}")["SecretString"]
    )
    assert kept == {"secret_access_key": secret, "principal_arn": user["Arn"]}


# --- a deployed stack, found by its CloudFormation outputs ---------------------------------------


def create_stack(moto_server: MotoServer, name: str, identity: Identity | None) -> None:
    """A stack whose outputs name the producers resources as the orderpipe stack's do.

    moto's CloudFormation creates the DynamoDB table from the template but not a usage plan or a user
    pool: those are the identity's (made as the local runtime makes them), named in the outputs.
    """
    resources = {
        "Producers": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "AttributeDefinitions": [{"AttributeName": "principal", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "principal", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        }
    }
    outputs: dict[str, Any] = {"ApiUrl": {"Value": "https://api.example.com/v1/"}}
    if identity is not None:
        outputs.update(
            AuthMode={"Value": identity.auth},
            ProducersTableName={"Value": {"Ref": "Producers"}},
            UsagePlanId={"Value": identity.usage_plan_id},
            ApiArn={"Value": "arn:aws:execute-api:us-east-1:123456789012:abc123"},
        )
        if identity.user_pool_id:
            outputs.update(
                UserPoolId={"Value": identity.user_pool_id},
                TokenUrl={"Value": "https://auth.example.com/oauth2/token"},
            )
    cloudformation = boto3.client(
        "cloudformation", endpoint_url=moto_server.endpoint_url, region_name=moto_server.region
    )
    cloudformation.create_stack(
        StackName=name, TemplateBody=json.dumps({"Resources": resources, "Outputs": outputs})
    )


def stack_identity(moto_server: MotoServer, name: str, identity: Identity) -> Identity:
    """`identity` deployed as stack `name`: its producers table is the one the stack made."""
    create_stack(moto_server, name, identity)
    cloudformation = boto3.client(
        "cloudformation", endpoint_url=moto_server.endpoint_url, region_name=moto_server.region
    )
    outputs = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
    table = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ProducersTableName")
    return dataclasses.replace(identity, producers_table=table)


def test_stack_outputs_name_the_resources_add_and_revoke_use(
    moto_server: MotoServer, aws_name: str, emulator_env: dict[str, str]
) -> None:
    # Given a deployed stack (jwt, the stack's user pool) whose outputs name its table, plan and pool
    stack = f"OrderPipe-{aws_name}"
    identity = stack_identity(moto_server, stack, make_identity(moto_server, aws_name, "jwt"))
    # When the operator adds a producer to that stack
    ran = orderpipe("add", "acme", "--stack", stack, env=emulator_env)
    # Then it talks to the stack, prints the stack's API and token URLs, and the stack's table has acme
    assert ran.code == 0, ran.err
    assert ran.err.startswith(f"pipeline: stack {stack} in {moto_server.region}")
    assert printed(ran.out, "API") == "https://api.example.com/v1/"
    assert printed(ran.out, "token URL") == "https://auth.example.com/oauth2/token"
    client_id = printed(ran.out, "client id")
    [row] = identity.stored()
    assert (row["principal"]["S"], row["producer"]["S"], row["status"]["S"]) == (client_id, "acme", "active")
    # When the operator revokes it there
    revoked = orderpipe("revoke", "acme", "--stack", stack, env=emulator_env)
    # Then the stack's table marks it revoked
    assert revoked.code == 0, revoked.err
    assert [row["status"]["S"] for row in identity.stored()] == ["revoked"]


def test_iam_add_to_a_stack_needs_a_principal_and_prints_the_api_key_and_the_policy(
    moto_server: MotoServer, aws_name: str, emulator_env: dict[str, str]
) -> None:
    # Given a deployed iam-mode stack
    stack = f"OrderPipe-{aws_name}"
    identity = stack_identity(moto_server, stack, make_identity(moto_server, aws_name, "iam"))
    # When the operator adds a producer without naming its IAM principal
    missing = orderpipe("add", "acme", "--stack", stack, env=emulator_env)
    # Then it is refused, saying what to pass
    assert missing.code == 2
    assert "iam mode: pass --principal with the producer's IAM role or user ARN" in missing.err
    # When it names the role
    ran = orderpipe("add", "acme", "--principal", ROLE_ARN, "--stack", stack, env=emulator_env)
    # Then the producer's API key and the identity policy its role needs (on the stack's API) are printed
    assert ran.code == 0, ran.err
    assert printed(ran.out, "principal") == ROLE_ARN
    api_key = printed(ran.out, "API key")
    policy = json.loads(ran.out[ran.out.index("{") :])
    assert policy["Statement"][0]["Action"] == "execute-api:Invoke"
    assert (
        "arn:aws:execute-api:us-east-1:123456789012:abc123/*/POST/orders"
        in policy["Statement"][0]["Resource"]
    )
    # ...and the stack's table maps the role to acme with that key, which is in the stack's usage plan
    [row] = identity.stored()
    assert (row["principal"]["S"], row["producer"]["S"], row["usage_key"]["S"]) == (ROLE_ARN, "acme", api_key)
    plan_keys = identity.apigateway.get_usage_plan_keys(usagePlanId=identity.usage_plan_id)["items"]
    assert [key["value"] for key in plan_keys] == [api_key]


def test_a_stack_that_is_missing_or_not_orderpipe_is_a_clear_error(
    moto_server: MotoServer, aws_name: str, emulator_env: dict[str, str]
) -> None:
    # Given a stack without orderpipe's outputs, and a stack name that does not exist
    create_stack(moto_server, f"Other-{aws_name}", None)
    # When the operator lists producers of each
    other = orderpipe("list", "--stack", f"Other-{aws_name}", env=emulator_env)
    missing = orderpipe("list", "--stack", f"Missing-{aws_name}", env=emulator_env)
    # Then each exits 2 saying what is wrong with the stack
    assert (other.code, missing.code) == (2, 2)
    assert "has no output AuthMode, ProducersTableName, UsagePlanId: is it an orderpipe stack?" in other.err
    assert f"error: stack 'Missing-{aws_name}'" in missing.err
