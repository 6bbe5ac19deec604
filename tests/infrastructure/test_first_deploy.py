"""What a first `cdk deploy` needs, asserted on the synthesized template.

The schema custom resource connects to Cassandra during the deploy, so the network path (routes,
peering or Transit Gateway attachment, endpoints, security-group rules) must exist before it runs:
CloudFormation creates a resource only after everything in its DependsOn.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from stacks.functions import CA_PATH_IN_LAMBDA
from tests.infrastructure.conftest import (
    CA_SECRET_ARN,
    EXISTING_VPC,
    KMS_KEY_ARN,
    PEERING_ID,
    SECRET_ARN,
    TRANSIT_GATEWAY_ID,
    VARIANTS,
    Synthesized,
    synthesize,
)
from tests.infrastructure.test_stack import CASSANDRA_FUNCTIONS, env, function, resources

CASSANDRA_CIDRS = ["10.20.0.0/16", "10.21.0.0/16"]


def _ids(synth: Synthesized, type_: str, props: dict[str, Any] | None = None) -> set[str]:
    found = synth.template.find_resources(type_, {"Properties": props} if props else None)
    return set(found)


def _schema_depends_on(synth: Synthesized) -> set[str]:
    (resource,) = resources(synth, "Custom::OrderpipeSchema").values()
    return set(resource.get("DependsOn", []))


@pytest.fixture(scope="module")
def peering_synth() -> Synthesized:
    """The example context: a new VPC peered with the cluster's VPC, two Cassandra CIDRs, a secret."""
    return synthesize(
        {
            "orderpipe:cassandraCidrs": CASSANDRA_CIDRS,
            "orderpipe:cassandraSecretArn": SECRET_ARN,
        }
    )


@pytest.fixture(scope="module")
def transit_gateway_synth() -> Synthesized:
    return synthesize(VARIANTS["new_vpc_transit_gateway_secret_kms_tls_ca_file_email"])


# -- finding 1: a network path to Cassandra exists before the schema resource runs ------------------
def test_new_vpc_peering_routes_every_function_subnet_to_each_cassandra_cidr_and_back(
    peering_synth: Synthesized,
) -> None:
    template = peering_synth.template
    template.has_resource_properties(
        "AWS::EC2::VPCPeeringConnection",
        {"VpcId": {"Ref": Match.string_like_regexp("^NetworkVpc")}, "PeerVpcId": "vpc-0fedcba9876543210"},
    )
    (peering_id,) = _ids(peering_synth, "AWS::EC2::VPCPeeringConnection")
    subnet_tables = _ids(peering_synth, "AWS::EC2::RouteTable")
    assert len(subnet_tables) == 2  # one per isolated subnet (two AZs)
    for table in subnet_tables:
        for cidr in CASSANDRA_CIDRS:
            template.has_resource_properties(
                "AWS::EC2::Route",
                {
                    "RouteTableId": {"Ref": table},
                    "DestinationCidrBlock": cidr,
                    "VpcPeeringConnectionId": {"Ref": peering_id},
                },
            )
    # The return route on the Cassandra side, to the new VPC's CIDR.
    template.has_resource_properties(
        "AWS::EC2::Route",
        {
            "RouteTableId": "rtb-0fedcba9876543210",
            "DestinationCidrBlock": "10.40.0.0/16",
            "VpcPeeringConnectionId": {"Ref": peering_id},
        },
    )
    template.resource_count_is("AWS::EC2::Route", 2 * 2 + 1)


def test_new_vpc_transit_gateway_is_attached_and_routes_wait_for_the_attachment(
    transit_gateway_synth: Synthesized,
) -> None:
    template = transit_gateway_synth.template
    subnets = _ids(transit_gateway_synth, "AWS::EC2::Subnet")
    template.has_resource_properties(
        "AWS::EC2::TransitGatewayAttachment",
        {
            "TransitGatewayId": TRANSIT_GATEWAY_ID,
            "SubnetIds": Match.array_equals([{"Ref": s} for s in sorted(subnets)]),
        },
    )
    (attachment,) = _ids(transit_gateway_synth, "AWS::EC2::TransitGatewayAttachment")
    for table in _ids(transit_gateway_synth, "AWS::EC2::RouteTable"):
        template.has_resource(
            "AWS::EC2::Route",
            {
                "Properties": {
                    "RouteTableId": {"Ref": table},
                    "DestinationCidrBlock": "10.20.0.0/16",
                    "TransitGatewayId": TRANSIT_GATEWAY_ID,
                },
                "DependsOn": [attachment],
            },
        )


@pytest.mark.parametrize(
    ("target", "value"),
    [("VpcPeeringConnectionId", PEERING_ID), ("TransitGatewayId", TRANSIT_GATEWAY_ID)],
)
def test_existing_vpc_routes_each_route_table_once(target: str, value: str) -> None:
    # Given two subnets sharing one route table (a second identical route would fail the deploy).
    overrides: dict[str, Any] = {
        **EXISTING_VPC,
        "orderpipe:vpcRouteTableIds": ["rtb-0123456789abcdef0", "rtb-0123456789abcdef0"],
        "orderpipe:cassandraPeeringConnectionId": value if target == "VpcPeeringConnectionId" else None,
        "orderpipe:cassandraTransitGatewayId": value if target == "TransitGatewayId" else None,
    }
    synth = synthesize(overrides)
    synth.template.resource_count_is("AWS::EC2::Route", 1)
    synth.template.has_resource_properties(
        "AWS::EC2::Route",
        {"RouteTableId": "rtb-0123456789abcdef0", "DestinationCidrBlock": "10.20.0.0/16", target: value},
    )
    synth.template.resource_count_is("AWS::EC2::TransitGatewayAttachment", 0)  # already attached
    assert _ids(synth, "AWS::EC2::Route") <= _schema_depends_on(synth)


def test_existing_vpc_with_routes_in_place_adds_none() -> None:
    synth = synthesize(VARIANTS["existing_vpc_routes_exist_without_endpoints"])
    synth.template.resource_count_is("AWS::EC2::Route", 0)
    synth.template.resource_count_is("AWS::EC2::VPCPeeringConnection", 0)


@pytest.mark.parametrize("fixture", ["peering_synth", "transit_gateway_synth"])
def test_schema_resource_depends_on_every_route_endpoint_and_security_group_rule(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    synth: Synthesized = request.getfixturevalue(fixture)
    (clients_group,) = _ids(
        synth, "AWS::EC2::SecurityGroup", {"GroupDescription": Match.string_like_regexp("Cassandra port")}
    )
    (endpoint_group,) = _ids(
        synth,
        "AWS::EC2::SecurityGroup",
        {"GroupDescription": Match.string_like_regexp("interface endpoints")},
    )
    # The rules of the schema function's group and of the endpoint's group (not the reader's DynamoDB rule).
    rules = {
        rule_id
        for type_ in ("AWS::EC2::SecurityGroupEgress", "AWS::EC2::SecurityGroupIngress")
        for rule_id, rule in resources(synth, type_).items()
        if rule["Properties"]["GroupId"]["Fn::GetAtt"][0] in {clients_group, endpoint_group}
    }
    needed = (
        _ids(synth, "AWS::EC2::Route")
        | _ids(synth, "AWS::EC2::VPCPeeringConnection")
        | _ids(synth, "AWS::EC2::TransitGatewayAttachment")
        | _ids(synth, "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Interface"})
        | rules
        | {clients_group, endpoint_group}
    )
    assert _ids(synth, "AWS::EC2::Route")
    assert _ids(synth, "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Interface"})  # Secrets Manager
    assert _ids(synth, "AWS::EC2::SecurityGroupIngress")  # HTTPS into that endpoint
    assert len(rules) == 2  # HTTPS out of the functions' group, into the endpoint's group
    assert needed <= _schema_depends_on(synth)


# -- finding 8: migrations before code; bounded reader ------------------------------------------------
@pytest.mark.parametrize("name", ["writer", "reader"])
def test_writer_and_reader_are_created_and_updated_after_the_schema_resource(
    default_synth: Synthesized, name: str
) -> None:
    (schema_id,) = _ids(default_synth, "Custom::OrderpipeSchema")
    function_id = function(default_synth, name)[0]
    default_synth.template.has_resource(
        "AWS::Lambda::Function",
        {
            "Properties": {"Handler": f"orderpipe_{name}.handler.lambda_handler"},
            "DependsOn": Match.array_with([schema_id]),
        },
    )
    assert function_id


def test_reader_reserved_concurrency_is_a_setting(default_synth: Synthesized) -> None:
    default_synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "orderpipe_reader.handler.lambda_handler", "ReservedConcurrentExecutions": 20},
    )
    synth = synthesize({"orderpipe:readerReservedConcurrency": 5})
    synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "orderpipe_reader.handler.lambda_handler", "ReservedConcurrentExecutions": 5},
    )
    # An account whose concurrency quota leaves no room for a reservation (AWS keeps 100 unreserved).
    unreserved = synthesize({"orderpipe:readerReservedConcurrency": "none"})
    unreserved.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "orderpipe_reader.handler.lambda_handler",
            "ReservedConcurrentExecutions": Match.absent(),
        },
    )


# -- finding 2: TLS settings reach the functions; the CA ships in their bundles ----------------------
def test_tls_with_a_ca_file_sets_the_functions_ca_path_and_hostname_check(
    transit_gateway_synth: Synthesized,
) -> None:
    for name in CASSANDRA_FUNCTIONS:
        variables = env(transit_gateway_synth, name)
        assert variables["CASSANDRA_TLS"] == "true"
        assert variables["CASSANDRA_TLS_CA_FILE"] == CA_PATH_IN_LAMBDA
        assert variables["CASSANDRA_TLS_HOSTNAME_CHECK"] == "ip_san"
        assert "CASSANDRA_TLS_SERVER_NAME" not in variables


def test_tls_server_name_ca_secret_and_protocol_pin_reach_the_functions() -> None:
    synth = synthesize(VARIANTS["api_cloudwatch_role_created_tls_server_name_ca_secret_protocol_pinned"])
    for name in CASSANDRA_FUNCTIONS:
        variables = env(synth, name)
        assert variables["CASSANDRA_TLS_HOSTNAME_CHECK"] == "server_name"
        assert variables["CASSANDRA_TLS_SERVER_NAME"] == "cassandra.internal.example"
        assert variables["CASSANDRA_TLS_CA_SECRET_ARN"] == CA_SECRET_ARN
        assert variables["CASSANDRA_PROTOCOL_VERSION"] == "4"
    # The CA secret is read through the Secrets Manager endpoint, granted like the credentials.
    synth.template.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Interface"})
    synth.template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.array_with(["secretsmanager:GetSecretValue"]),
                                "Resource": CA_SECRET_ARN,
                            }
                        )
                    ]
                )
            }
        },
    )


def test_no_protocol_version_is_pinned_by_default(default_synth: Synthesized) -> None:
    for name in CASSANDRA_FUNCTIONS:
        assert "CASSANDRA_PROTOCOL_VERSION" not in env(default_synth, name)


# -- finding 5: a customer-managed KMS key on the secret ------------------------------------------------
def test_kms_key_decrypt_is_granted_to_the_cassandra_functions_through_secrets_manager_only(
    transit_gateway_synth: Synthesized,
) -> None:
    decrypt = Match.object_like(
        {
            "Action": "kms:Decrypt",
            "Resource": KMS_KEY_ARN,
            "Condition": {"StringEquals": {"kms:ViaService": Match.any_value()}},
        }
    )
    for name in CASSANDRA_FUNCTIONS:
        role = function(transit_gateway_synth, name)[1]["Properties"]["Role"]["Fn::GetAtt"][0]
        transit_gateway_synth.template.has_resource_properties(
            "AWS::IAM::Policy",
            {"Roles": [{"Ref": role}], "PolicyDocument": {"Statement": Match.array_with([decrypt])}},
        )
    ingest_role = function(transit_gateway_synth, "ingest")[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    for policy in resources(transit_gateway_synth, "AWS::IAM::Policy").values():
        if policy["Properties"]["Roles"] == [{"Ref": ingest_role}]:
            assert "kms:Decrypt" not in str(policy["Properties"]["PolicyDocument"])


# -- findings 6 and 7: the account-level role, the API's name, alarms by name and stage ------------
def test_the_account_level_api_gateway_role_is_not_managed_by_default(default_synth: Synthesized) -> None:
    default_synth.template.resource_count_is("AWS::ApiGateway::Account", 0)
    # Access logs stay on: they need the account's role, which docs/deploy.md says how to check.
    default_synth.template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {"AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()})},
    )


def test_the_account_level_role_when_asked_for_is_kept_on_stack_deletion() -> None:
    synth = synthesize({"orderpipe:apiGatewayCloudWatchRole": "create"})
    synth.template.has_resource(
        "AWS::ApiGateway::Account", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    )


def test_api_name_is_unique_per_stack() -> None:
    first = synthesize()
    second = synthesize({"orderpipe:stackName": "OrderPipeStaging"})
    first.template.has_resource_properties("AWS::ApiGateway::RestApi", {"Name": "OrderPipe-orders"})
    second.template.has_resource_properties("AWS::ApiGateway::RestApi", {"Name": "OrderPipeStaging-orders"})


def test_api_alarm_metrics_are_filtered_by_api_name_and_stage(default_synth: Synthesized) -> None:
    (stage_id,) = _ids(default_synth, "AWS::ApiGateway::Stage")
    dimensions = [
        {"Name": "ApiName", "Value": "OrderPipe-orders"},
        {"Name": "Stage", "Value": {"Ref": stage_id}},
    ]
    for metric_name in ("5XXError", "Count"):
        default_synth.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "Metrics": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "MetricStat": Match.object_like(
                                    {
                                        "Metric": {
                                            "Dimensions": dimensions,
                                            "MetricName": metric_name,
                                            "Namespace": "AWS/ApiGateway",
                                        }
                                    }
                                )
                            }
                        )
                    ]
                )
            },
        )


def _dashboard_widgets(synth: Synthesized) -> list[dict[str, Any]]:
    """The dashboard's widgets; a reference in the body (always inside a JSON string) reads "Ref:<id>"."""
    (dashboard,) = resources(synth, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(
        part if isinstance(part, str) else "Ref:" + str(part.get("Ref") or json.dumps(part).replace('"', "'"))
        for part in parts
    )
    widgets: list[dict[str, Any]] = json.loads(text)["widgets"]
    return widgets


def test_the_dashboards_api_graphs_show_this_api_and_stage_only(default_synth: Synthesized) -> None:
    # Given the default stack, its API named <stackName>-orders and its one stage,
    (stage_id,) = _ids(default_synth, "AWS::ApiGateway::Stage")
    # when the dashboard's API graphs are read,
    api_metrics = [
        metric
        for widget in _dashboard_widgets(default_synth)
        if widget["properties"].get("title", "").startswith("API:")
        for metric in widget["properties"]["metrics"]
        if metric[0] == "AWS/ApiGateway"
    ]
    # then every API Gateway metric they plot (requests, and both sides of the 5XX rate) carries
    # this API's name and stage, so no other API of the region is added in.
    assert sorted(metric[1] for metric in api_metrics) == ["5XXError", "Count", "Count"]
    for metric in api_metrics:
        dimensions = dict(zip(metric[2:6:2], metric[3:7:2], strict=True))
        assert dimensions == {"ApiName": "OrderPipe-orders", "Stage": f"Ref:{stage_id}"}, metric
