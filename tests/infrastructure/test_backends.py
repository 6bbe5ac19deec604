"""The synthesized template per backend: placement, network path, grants, environment.

Each configuration is the one tests/infrastructure/conftest.py synthesizes with cdk-nag for every
infrastructure test (`nagged_outdirs`: reaching these tests means cdk-nag found nothing
unacknowledged); cfn-lint and checkov judge the same templates (test_checks.py, test_checkov.py).
What a template cannot show (that Keyspaces accepts the role's signature through the endpoint, that
Astra answers from outside the VPC) is listed in docs/deploy.md as verified only on paper.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.infrastructure.conftest import (
    ASTRA_BUNDLE_SECRET_ARN,
    ASTRA_TOKEN_SECRET_ARN,
    KMS_KEY_ARN,
    SECRET_ARN,
)

KEYSPACES_SIGV4 = "keyspaces_new_vpc_sigv4"
KEYSPACES_SERVICE_SPECIFIC = "keyspaces_existing_vpc_service_specific_secret_kms_without_endpoints"
ASTRA = "astra_outside_the_vpc"
CASSANDRA_FUNCTIONS = ("Writer", "Reader", "Schema")


def template(outdirs: dict[str, Path], name: str) -> Template:
    return Template.from_json(json.loads((outdirs[name] / "OrderPipe.template.json").read_text()))


@pytest.fixture(scope="module")
def keyspaces(nagged_outdirs: dict[str, Path]) -> Template:
    return template(nagged_outdirs, KEYSPACES_SIGV4)


@pytest.fixture(scope="module")
def keyspaces_service_specific(nagged_outdirs: dict[str, Path]) -> Template:
    return template(nagged_outdirs, KEYSPACES_SERVICE_SPECIFIC)


@pytest.fixture(scope="module")
def astra(nagged_outdirs: dict[str, Path]) -> Template:
    return template(nagged_outdirs, ASTRA)


def keyspaces_arn(resource: str) -> dict[str, Any]:
    """How the template spells arn:<partition>:cassandra:<region>:<account>:/keyspace/<resource>."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":cassandra:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":/keyspace/{resource}",
            ],
        ]
    }


def statements_of(template: Template, function: str) -> list[dict[str, Any]]:
    """Every statement of the function role's policy (CDK's DefaultPolicy holds all its grants)."""
    policies = template.find_resources("AWS::IAM::Policy")
    (policy,) = [p for key, p in policies.items() if key.startswith(f"Functions{function}ServiceRole")]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def actions_on(statements: list[dict[str, Any]], resource: dict[str, Any] | str) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if resource in resources:
            actions = statement["Action"]
            found |= set(actions if isinstance(actions, list) else [actions])
    return found


def cassandra_actions(statements: list[dict[str, Any]]) -> set[str]:
    return {
        action
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if action.startswith("cassandra:")
    }


def function_properties(template: Template, function: str) -> dict[str, Any]:
    functions = template.find_resources("AWS::Lambda::Function")
    (found,) = [
        f for key, f in functions.items() if key.startswith(f"Functions{function}") and "Logs" not in key
    ]
    properties: dict[str, Any] = found["Properties"]
    return properties


# -- Amazon Keyspaces, signed with the functions' roles ------------------------------------------------
def test_keyspaces_is_reached_through_an_interface_endpoint_on_9142_from_the_functions_only(
    keyspaces: Template,
) -> None:
    # Given cassandraBackend=keyspaces in a new VPC, then the VPC has the Keyspaces interface endpoint
    # with private DNS (the service name resolves to it), guarded by its own security group,
    keyspaces.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "ServiceName": {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".cassandra"]]},
            "VpcEndpointType": "Interface",
            "PrivateDnsEnabled": True,
            "SecurityGroupIds": [
                {"Fn::GetAtt": [Match.string_like_regexp("KeyspacesEndpointSecurityGroup"), "GroupId"]}
            ],
        },
    )
    # which admits 9142 from the functions' group only, the functions' only way out besides HTTPS to DynamoDB;
    keyspaces.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "IpProtocol": "tcp",
            "FromPort": 9142,
            "ToPort": 9142,
            "GroupId": {
                "Fn::GetAtt": [Match.string_like_regexp("KeyspacesEndpointSecurityGroup"), "GroupId"]
            },
            "SourceSecurityGroupId": {
                "Fn::GetAtt": [Match.string_like_regexp("NetworkCassandraClients"), "GroupId"]
            },
        },
    )
    egress = keyspaces.find_resources("AWS::EC2::SecurityGroupEgress")
    assert sorted(rule["Properties"]["FromPort"] for rule in egress.values()) == [443, 9142]
    # and there is no route, peering or Cassandra CIDR: the service is not in a network of ours.
    for kind in ("AWS::EC2::Route", "AWS::EC2::VPCPeeringConnection", "AWS::EC2::TransitGatewayAttachment"):
        keyspaces.resource_count_is(kind, 0)


def test_keyspaces_functions_connect_to_the_regional_endpoint_name_with_sigv4(keyspaces: Template) -> None:
    for function in CASSANDRA_FUNCTIONS:
        keyspaces.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "Environment": {
                    "Variables": Match.object_like(
                        {
                            "POWERTOOLS_SERVICE_NAME": function.lower(),
                            "CASSANDRA_BACKEND": "keyspaces",
                            "CASSANDRA_KEYSPACES_AUTH": "sigv4",
                            # The TLS name checked on every connection, resolved to the endpoint in the VPC.
                            "CASSANDRA_CONTACT_POINTS": {
                                "Fn::Join": [
                                    "",
                                    ["cassandra.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}],
                                ]
                            },
                            # Port 9142, protocol v4 and the shipped CA are the backend's defaults.
                            "CASSANDRA_PORT": Match.absent(),
                            "CASSANDRA_LOCAL_DC": Match.absent(),
                            "CASSANDRA_TLS": Match.absent(),
                            "CASSANDRA_SECRET_ARN": Match.absent(),
                        }
                    )
                },
                "VpcConfig": Match.object_like({"SecurityGroupIds": Match.any_value()}),
            },
        )


def test_keyspaces_grants_each_function_only_its_actions_on_the_keyspace_tables(keyspaces: Template) -> None:
    orders = keyspaces_arn("orderpipe/table/orders")
    ledger = keyspaces_arn("orderpipe/table/schema_migrations")
    keyspace = keyspaces_arn("orderpipe/")
    system = keyspaces_arn("system*")
    writer, reader, schema = (statements_of(keyspaces, f) for f in CASSANDRA_FUNCTIONS)
    # The writer only writes orders, the reader only reads them,
    assert actions_on(writer, orders) == {"cassandra:Modify"}
    assert actions_on(reader, orders) == {"cassandra:Select"}
    assert cassandra_actions(writer) == {"cassandra:Modify", "cassandra:Select"}  # Select: system* only
    assert cassandra_actions(reader) == {"cassandra:Select"}
    # the schema function creates the keyspace (and its types) and the tables, and keeps its ledger;
    assert actions_on(schema, keyspace) == {"cassandra:Create"}
    assert actions_on(schema, orders) == {"cassandra:Create", "cassandra:Alter"}
    assert actions_on(schema, ledger) == {
        "cassandra:Create",
        "cassandra:Alter",
        "cassandra:Select",
        "cassandra:Modify",
    }
    for statements in (writer, reader, schema):
        # every function reads the system keyspaces (peers, schema metadata) and may describe the
        # endpoint's network interfaces, so system.peers lists one entry per AZ;
        assert actions_on(statements, system) == {"cassandra:Select"}
        assert {"ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcEndpoints"} <= actions_on(statements, "*")
        # and no statement names all of Keyspaces.
        assert not any("cassandra:*" in str(s["Action"]) for s in statements)
    # Nothing else reaches Keyspaces: the ingest function has no cassandra action at all.
    assert cassandra_actions(statements_of(keyspaces, "Ingest")) == set()


def test_keyspaces_schema_waits_for_the_endpoint_before_it_connects(keyspaces: Template) -> None:
    resources = keyspaces.find_resources("Custom::OrderpipeSchema")
    (schema,) = resources.values()
    assert any(
        d.startswith("NetworkKeyspacesEndpoint") and "SecurityGroup" not in d for d in schema["DependsOn"]
    )
    assert any(d.startswith("NetworkKeyspacesEndpointSecurityGroup") for d in schema["DependsOn"])


# -- Amazon Keyspaces with service-specific credentials, an existing VPC and its endpoints ----------------
def test_keyspaces_service_specific_uses_the_vpcs_endpoint_and_reads_the_secret(
    keyspaces_service_specific: Template,
) -> None:
    template = keyspaces_service_specific
    # Given an existing VPC whose endpoints exist, the stack adds none and sends 9142 and HTTPS to the VPC;
    template.resource_count_is("AWS::EC2::VPCEndpoint", 0)
    template.resource_count_is("AWS::EC2::VPC", 0)
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "SecurityGroupEgress": Match.array_with(
                [
                    Match.object_like({"CidrIp": "10.30.0.0/16", "FromPort": 443, "ToPort": 443}),
                    Match.object_like({"CidrIp": "10.30.0.0/16", "FromPort": 9142, "ToPort": 9142}),
                ]
            )
        },
    )
    for function in CASSANDRA_FUNCTIONS:
        statements = statements_of(template, function)
        # the functions read the IAM user's credentials from the secret (decrypted through Secrets Manager),
        assert {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"} <= actions_on(
            statements, SECRET_ARN
        )
        assert actions_on(statements, KMS_KEY_ARN) == {"kms:Decrypt"}
        # and their roles hold no Keyspaces permission: the IAM user the credentials belong to does.
        assert cassandra_actions(statements) == set()
        variables = function_properties(template, function)["Environment"]["Variables"]
        assert (variables["CASSANDRA_KEYSPACES_AUTH"], variables["CASSANDRA_SECRET_ARN"]) == (
            "service_specific",
            SECRET_ARN,
        )


# -- DataStax Astra DB, outside the VPC -----------------------------------------------------------------
def test_astra_has_no_vpc_and_its_functions_run_outside_any(astra: Template) -> None:
    for kind in ("AWS::EC2::VPC", "AWS::EC2::SecurityGroup", "AWS::EC2::VPCEndpoint", "AWS::EC2::NatGateway"):
        astra.resource_count_is(kind, 0)
    for function in CASSANDRA_FUNCTIONS:
        properties = function_properties(astra, function)
        assert "VpcConfig" not in properties
        variables = properties["Environment"]["Variables"]
        # The bundle names the hosts, the port and the TLS material: none of them is in the environment.
        assert variables["CASSANDRA_BACKEND"] == "astra"
        assert variables["CASSANDRA_ASTRA_BUNDLE_SECRET_ARN"] == ASTRA_BUNDLE_SECRET_ARN
        assert variables["CASSANDRA_SECRET_ARN"] == ASTRA_TOKEN_SECRET_ARN
        assert not {
            "CASSANDRA_CONTACT_POINTS",
            "CASSANDRA_PORT",
            "CASSANDRA_TLS",
            "CASSANDRA_REPLICATION",
        } & set(variables)


def test_astra_functions_may_read_the_bundle_and_the_token_and_nothing_of_keyspaces(astra: Template) -> None:
    for function in CASSANDRA_FUNCTIONS:
        statements = statements_of(astra, function)
        for arn in (ASTRA_BUNDLE_SECRET_ARN, ASTRA_TOKEN_SECRET_ARN):
            assert {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"} <= actions_on(
                statements, arn
            )
        assert cassandra_actions(statements) == set()
        assert not any(str(s["Action"]).count("ec2:") for s in statements)
    # Outside a VPC, the roles do not get the policy for VPC network interfaces either.
    roles = astra.find_resources("AWS::IAM::Role")
    assert "AWSLambdaVPCAccessExecutionRole" not in json.dumps(roles)


def test_each_backend_names_itself_in_the_outputs(keyspaces: Template, astra: Template) -> None:
    keyspaces.has_output("CassandraBackend", {"Value": "keyspaces"})
    astra.has_output("CassandraBackend", {"Value": "astra"})
