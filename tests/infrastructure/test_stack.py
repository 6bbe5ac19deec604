"""Every promise of the stack, checked on the synthesized template (no logical ids hard-coded)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from orderpipe_common import tables
from orderpipe_common.tuning import DEFAULT_TUNING
from stacks.functions import RUNTIME
from tests.infrastructure.conftest import EXISTING_VPC, SECRET_ARN, Synthesized, synthesize

TUNING = DEFAULT_TUNING
HANDLERS = {
    name: f"orderpipe_{name}.handler.lambda_handler" for name in ("ingest", "writer", "reader", "schema")
}
CASSANDRA_FUNCTIONS = ("writer", "reader", "schema")


def resources(synth: Synthesized, type_: str) -> dict[str, dict[str, Any]]:
    return dict(synth.template.find_resources(type_))  # type: ignore[arg-type]


def function(synth: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    found = synth.template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": HANDLERS[name]}}
    )
    assert len(found) == 1, f"expected one {name} function, found {list(found)}"
    key, value = next(iter(found.items()))
    return key, dict(value)


def env(synth: Synthesized, name: str) -> dict[str, Any]:
    variables: dict[str, Any] = function(synth, name)[1]["Properties"]["Environment"]["Variables"]
    return variables


# -- functions --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(HANDLERS))
def test_function_runtime_architecture_tracing_and_powertools_env(
    default_synth: Synthesized, name: str
) -> None:
    default_synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": HANDLERS[name],
            "Runtime": RUNTIME.name,
            "Architectures": ["x86_64"],
            "TracingConfig": {"Mode": "Active"},
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "POWERTOOLS_SERVICE_NAME": name,
                        "POWERTOOLS_METRICS_NAMESPACE": "orderpipe",
                        "POWERTOOLS_LOG_LEVEL": "INFO",
                    }
                )
            },
        },
    )
    assert RUNTIME.name == "python3.12"


def test_ingest_is_outside_the_vpc_and_the_others_inside(default_synth: Synthesized) -> None:
    assert "VpcConfig" not in function(default_synth, "ingest")[1]["Properties"]
    for name in CASSANDRA_FUNCTIONS:
        vpc_config = function(default_synth, name)[1]["Properties"]["VpcConfig"]
        assert vpc_config["SubnetIds"], name
        assert vpc_config["SecurityGroupIds"], name


def test_ingest_environment(default_synth: Synthesized) -> None:
    variables = env(default_synth, "ingest")
    assert set(variables) >= {
        "ORDERS_QUEUE_URL",
        "IDEMPOTENCY_TABLE_NAME",
        "IDEMPOTENCY_EXPIRES_AFTER_SECONDS",
    }
    assert not any(key.startswith("CASSANDRA_") for key in variables)


@pytest.mark.parametrize("name", CASSANDRA_FUNCTIONS)
def test_cassandra_environment(default_synth: Synthesized, name: str) -> None:
    variables = env(default_synth, name)
    assert variables["CASSANDRA_CONTACT_POINTS"] == "10.20.1.10,10.20.2.10,10.20.3.10"
    assert variables["CASSANDRA_PORT"] == "9042"
    assert variables["CASSANDRA_LOCAL_DC"] == "dc1"
    assert variables["CASSANDRA_KEYSPACE"] == "orderpipe"
    assert variables["CASSANDRA_WRITE_CONSISTENCY"] == TUNING.write_consistency
    assert variables["CASSANDRA_READ_CONSISTENCY"] == TUNING.read_consistency
    assert variables["CASSANDRA_TLS"] == "false"
    assert float(variables["CASSANDRA_REQUEST_TIMEOUT_SECONDS"]) > 0
    assert "CASSANDRA_SECRET_ARN" not in variables
    assert not any("PASSWORD" in key or "USERNAME" in key for key in variables)


def test_reader_and_schema_specific_environment(default_synth: Synthesized) -> None:
    reader = env(default_synth, "reader")
    assert reader["CACHE_TTL_SECONDS"] == str(TUNING.cache_ttl_seconds)
    assert "CACHE_TABLE_NAME" in reader
    replication = json.loads(env(default_synth, "schema")["CASSANDRA_REPLICATION"])
    assert replication == {"class": "NetworkTopologyStrategy", "dc1": 3}


def test_writer_timeout_from_tuning(default_synth: Synthesized) -> None:
    default_synth.template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": HANDLERS["writer"], "Timeout": TUNING.writer_timeout_seconds}
    )


# -- event source -----------------------------------------------------------------------------------
def test_event_source_mapping_settings_come_from_tuning(default_synth: Synthesized) -> None:
    default_synth.template.resource_count_is("AWS::Lambda::EventSourceMapping", 1)
    writer_id = function(default_synth, "writer")[0]
    default_synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": writer_id},
            "BatchSize": TUNING.writer_batch_size,
            "MaximumBatchingWindowInSeconds": TUNING.writer_batching_window_seconds,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": TUNING.writer_max_concurrency},
        },
    )


def test_tuning_overrides_from_context_reach_the_template() -> None:
    synth = synthesize(
        {
            "orderpipe:tuning": {
                "writer_batch_size": 50,
                "writer_max_concurrency": 7,
                "writer_timeout_seconds": 20,
            }
        }
    )
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"BatchSize": 50, "ScalingConfig": {"MaximumConcurrency": 7}},
    )
    synth.template.has_resource_properties("AWS::SQS::Queue", {"VisibilityTimeout": 120})


# -- SnapStart -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def snap_start_synth() -> Synthesized:
    return synthesize({"orderpipe:snapStart": True}, nag=True)


def test_without_snap_start_nothing_is_published_and_everything_targets_the_functions(
    default_synth: Synthesized,
) -> None:
    default_synth.template.resource_count_is("AWS::Lambda::Alias", 0)
    for name in HANDLERS:
        assert "SnapStart" not in function(default_synth, name)[1]["Properties"]


def test_snap_start_publishes_the_request_path_and_invokes_it_through_aliases(
    snap_start_synth: Synthesized,
) -> None:
    template = snap_start_synth.template
    # Ingest, reader and writer snapshot their published versions; the schema resource does not
    for name in ("ingest", "reader", "writer"):
        assert function(snap_start_synth, name)[1]["Properties"]["SnapStart"] == {
            "ApplyOn": "PublishedVersions"
        }
    assert "SnapStart" not in function(snap_start_synth, "schema")[1]["Properties"]
    aliases = resources(snap_start_synth, "AWS::Lambda::Alias")
    assert sorted(a["Properties"]["Name"] for a in aliases.values()) == ["live"] * 3
    by_function = {a["Properties"]["FunctionName"]["Ref"]: key for key, a in aliases.items()}
    # The event source feeds the writer's alias (its ARN qualified by :live), not the unpublished $LATEST
    [mapping] = resources(snap_start_synth, "AWS::Lambda::EventSourceMapping").values()
    target = json.dumps(mapping["Properties"]["FunctionName"])
    writer_alias = by_function[function(snap_start_synth, "writer")[0]]
    assert writer_alias in target and ":live" in target
    # The API invokes the ingest's and the reader's aliases (and may: the permissions name them)
    integrations = [
        json.dumps(m["Properties"]["Integration"]["Uri"])
        for m in resources(snap_start_synth, "AWS::ApiGateway::Method").values()
        if "Integration" in m["Properties"]
    ]
    for name in ("ingest", "reader"):
        alias = by_function[function(snap_start_synth, name)[0]]
        assert any(alias in uri for uri in integrations), f"no API method invokes the {name} alias"
        template.has_resource_properties(
            "AWS::Lambda::Permission",
            {"FunctionName": {"Ref": alias}, "Principal": "apigateway.amazonaws.com"},
        )


def test_snap_start_must_be_a_boolean() -> None:
    from stacks.config import ContextError, OrderPipeConfig

    context = {"orderpipe:cassandraContactPoints": "10.0.1.5", "orderpipe:cassandraLocalDc": "dc1"}
    context |= {"orderpipe:cassandraCidrs": "10.0.0.0/16", "orderpipe:snapStart": "sometimes"}
    with pytest.raises(ContextError, match="orderpipe:snapStart: must be true or false"):
        OrderPipeConfig.from_context(context.get)


def test_the_low_latency_profile_feeds_the_writer_without_a_batching_window() -> None:
    synth = synthesize({"orderpipe:tuningProfile": "low_latency"})
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 0}
    )


# -- queue --------------------------------------------------------------------------------------------
def test_queue_visibility_retention_encryption_and_redrive(default_synth: Synthesized) -> None:
    queues = resources(default_synth, "AWS::SQS::Queue")
    assert len(queues) == 2
    main = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(main) == 1
    props = main[0]["Properties"]
    assert props["VisibilityTimeout"] >= 6 * TUNING.writer_timeout_seconds
    assert props["VisibilityTimeout"] == TUNING.visibility_timeout_seconds
    assert props["MessageRetentionPeriod"] == TUNING.queue_retention_days * 86400
    assert props["RedrivePolicy"]["maxReceiveCount"] == TUNING.max_receive_count
    dlq_id = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    dlq = queues[dlq_id]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 86400 == TUNING.dlq_retention_days * 86400
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_queues_enforce_ssl(default_synth: Synthesized) -> None:
    policies = resources(default_synth, "AWS::SQS::QueuePolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


# -- tables -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "expiry"),
    [
        (tables.CACHE_PARTITION_KEY, tables.CACHE_EXPIRY_ATTRIBUTE),
        (tables.IDEMPOTENCY_PARTITION_KEY, tables.IDEMPOTENCY_EXPIRY_ATTRIBUTE),
    ],
)
def test_tables_on_demand_ttl_encrypted(default_synth: Synthesized, key: str, expiry: str) -> None:
    default_synth.template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": expiry, "Enabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


# -- network ------------------------------------------------------------------------------------------
def test_new_vpc_has_only_isolated_subnets_and_a_dynamodb_gateway_endpoint(
    default_synth: Synthesized,
) -> None:
    default_synth.template.resource_count_is("AWS::EC2::NatGateway", 0)
    default_synth.template.resource_count_is("AWS::EC2::InternetGateway", 0)
    for subnet in resources(default_synth, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    default_synth.template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"VpcEndpointType": "Gateway", "ServiceName": Match.object_like({"Fn::Join": Match.any_value()})},
    )
    endpoints = resources(default_synth, "AWS::EC2::VPCEndpoint")
    assert any("dynamodb" in json.dumps(e["Properties"]["ServiceName"]) for e in endpoints.values())
    default_synth.template.resource_count_is("AWS::EC2::FlowLog", 1)


def _egress_by_group(synth: Synthesized) -> dict[str, list[dict[str, Any]]]:
    """Egress rules per orderpipe security group: inline ones and separately declared ones."""
    groups = {
        k: list(v["Properties"].get("SecurityGroupEgress", []))
        for k, v in resources(synth, "AWS::EC2::SecurityGroup").items()
        if "orderpipe" in v["Properties"]["GroupDescription"]
    }
    for rule in resources(synth, "AWS::EC2::SecurityGroupEgress").values():
        props = dict(rule["Properties"])
        groups[props.pop("GroupId")["Fn::GetAtt"][0]].append(props)
    for rules in groups.values():
        for rule in rules:
            rule.pop("Description", None)
    return groups


def _group_ids(synth: Synthesized, name: str) -> list[str]:
    refs = function(synth, name)[1]["Properties"]["VpcConfig"]["SecurityGroupIds"]
    return [ref["Fn::GetAtt"][0] for ref in refs]


CASSANDRA_RULE = {"CidrIp": "10.20.0.0/16", "FromPort": 9042, "IpProtocol": "tcp", "ToPort": 9042}


def test_vpc_functions_reach_only_cassandra_port_on_the_cassandra_cidrs(default_synth: Synthesized) -> None:
    egress = _egress_by_group(default_synth)
    for name in ("writer", "schema"):
        (group,) = _group_ids(default_synth, name)
        assert egress[group] == [CASSANDRA_RULE], name
    for declared in resources(default_synth, "AWS::EC2::SecurityGroup").values():
        assert "SecurityGroupIngress" not in declared["Properties"]
    default_synth.template.resource_count_is("AWS::EC2::SecurityGroupIngress", 0)


def test_only_the_reader_may_reach_dynamodb_and_only_over_https_to_its_prefix_list(
    default_synth: Synthesized,
) -> None:
    egress = _egress_by_group(default_synth)
    rules = [rule for group in _group_ids(default_synth, "reader") for rule in egress[group]]
    assert CASSANDRA_RULE in rules
    https = [rule for rule in rules if rule != CASSANDRA_RULE]
    assert len(https) == 1
    assert https[0]["FromPort"] == https[0]["ToPort"] == 443
    assert "DestinationPrefixListId" in https[0] and "CidrIp" not in https[0]


@pytest.fixture(scope="module")
def secret_vpc_synth() -> Synthesized:
    return synthesize(
        {
            "orderpipe:cassandraSecretArn": SECRET_ARN,
            "orderpipe:cassandraTls": True,
            "orderpipe:cassandraTlsHostnameCheck": "ip_san",
            **EXISTING_VPC,
        }
    )


def test_existing_vpc_is_imported_without_lookups(secret_vpc_synth: Synthesized) -> None:
    secret_vpc_synth.template.resource_count_is("AWS::EC2::VPC", 0)
    for name in CASSANDRA_FUNCTIONS:
        vpc_config = function(secret_vpc_synth, name)[1]["Properties"]["VpcConfig"]
        assert vpc_config["SubnetIds"] == EXISTING_VPC["orderpipe:vpcSubnetIds"]
    secret_vpc_synth.template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"VpcEndpointType": "Gateway", "RouteTableIds": EXISTING_VPC["orderpipe:vpcRouteTableIds"]},
    )


def test_secret_is_granted_and_passed_by_arn_only(secret_vpc_synth: Synthesized) -> None:
    for name in CASSANDRA_FUNCTIONS:
        variables = env(secret_vpc_synth, name)
        assert variables["CASSANDRA_SECRET_ARN"] == SECRET_ARN
        assert variables["CASSANDRA_TLS"] == "true"
    assert "CASSANDRA_SECRET_ARN" not in env(secret_vpc_synth, "ingest")
    secret_vpc_synth.template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                                "Resource": SECRET_ARN,
                            }
                        )
                    ]
                )
            }
        },
    )
    # The Secrets Manager interface endpoint admits HTTPS from the functions' group only.
    secret_vpc_synth.template.has_resource_properties(
        "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Interface", "PrivateDnsEnabled": True}
    )
    secret_vpc_synth.template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "SourceSecurityGroupId": Match.any_value()},
    )


# -- API ----------------------------------------------------------------------------------------------
def test_api_routes_each_require_the_authorizer_and_an_api_key(default_synth: Synthesized) -> None:
    methods = resources(default_synth, "AWS::ApiGateway::Method")
    routes = set()
    paths = {
        rid: r["Properties"]["PathPart"]
        for rid, r in resources(default_synth, "AWS::ApiGateway::Resource").items()
    }
    for method in methods.values():
        props = method["Properties"]
        if props["HttpMethod"] == "OPTIONS":
            continue
        assert props["ApiKeyRequired"] is True, props
        assert props["AuthorizationType"] == "CUSTOM", props
        assert "AuthorizerId" in props, props
        routes.add((props["HttpMethod"], paths[props["ResourceId"]["Ref"]]))
    assert routes == {("POST", "orders"), ("POST", "batch"), ("GET", "{id}")}
    default_synth.template.has_resource_properties(
        "AWS::ApiGateway::Method",
        {"HttpMethod": "GET", "RequestParameters": {"method.request.path.id": True}},
    )


def test_usage_plan_throttles_and_quota(default_synth: Synthesized) -> None:
    default_synth.template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": 500, "BurstLimit": 1000},
            "Quota": {"Limit": 10_000_000, "Period": "DAY"},
            "ApiStages": Match.array_with([Match.object_like({"Stage": Match.any_value()})]),
        },
    )
    # Producers' keys join the plan through `orderpipe producers add`; the stack makes none.
    default_synth.template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 0)
    default_synth.template.resource_count_is("AWS::ApiGateway::ApiKey", 0)


def test_stage_has_json_access_logs_and_xray(default_synth: Synthesized) -> None:
    stage = next(iter(resources(default_synth, "AWS::ApiGateway::Stage").values()))["Properties"]
    assert stage["TracingEnabled"] is True
    access_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "httpMethod", "resourcePath"} <= set(access_format)
    assert "DestinationArn" in stage["AccessLogSetting"]


def test_gateway_errors_are_json(default_synth: Synthesized) -> None:
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        default_synth.template.has_resource_properties(
            "AWS::ApiGateway::GatewayResponse",
            {
                "ResponseType": response_type,
                "ResponseTemplates": {"application/json": Match.string_like_regexp(r'^\{"error"')},
            },
        )


# -- schema custom resource ---------------------------------------------------------------------------
def test_schema_custom_resource_reruns_when_migrations_change(default_synth: Synthesized) -> None:
    from stacks.schema import migrations_hash

    default_synth.template.has_resource_properties(
        "Custom::OrderpipeSchema",
        {"ServiceToken": Match.any_value(), "Keyspace": "orderpipe", "MigrationsHash": migrations_hash()},
    )


def test_migrations_hash_follows_content(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stacks import schema

    (tmp_path / "0001_a.cql").write_text("CREATE TABLE a (id int PRIMARY KEY);")
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", tmp_path)
    monkeypatch.setattr("stacks.bundling.REPO_ROOT", tmp_path)
    first = schema.migrations_hash()
    (tmp_path / "0002_b.cql").write_text("ALTER TABLE a ADD b text;")
    second = schema.migrations_hash()
    (tmp_path / "0002_b.cql").write_text("ALTER TABLE a ADD c text;")
    assert len({first, second, schema.migrations_hash()}) == 3


# -- monitoring ---------------------------------------------------------------------------------------
def _alarm(synth: Synthesized, metric_name: str, *, function_handler: str | None = None) -> dict[str, Any]:
    """The one alarm on `metric_name` (of the function whose handler is `function_handler`, if given)."""
    function_ids = {
        function_id
        for function_id, function in resources(synth, "AWS::Lambda::Function").items()
        if function["Properties"].get("Handler") == function_handler
    }
    found = [
        a["Properties"]
        for a in resources(synth, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == metric_name
        and (
            function_handler is None
            or any(
                d.get("Value", {}).get("Ref") in function_ids for d in a["Properties"].get("Dimensions", [])
            )
        )
    ]
    assert len(found) == 1, f"expected one alarm on {metric_name}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize(
    ("metric", "threshold"),
    [
        ("ApproximateNumberOfMessagesVisible", None),
        ("ApproximateAgeOfOldestMessage", TUNING.alarm_oldest_message_age_seconds),
        ("Throttles", 0),
        ("Duration", TUNING.alarm_reader_p99_latency_ms),
    ],
)
def test_alarm_thresholds(default_synth: Synthesized, metric: str, threshold: float | None) -> None:
    if metric == "ApproximateNumberOfMessagesVisible":
        alarms = [
            a["Properties"]
            for a in resources(default_synth, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("MetricName") == metric
        ]
        assert sorted(a["Threshold"] for a in alarms) == sorted(
            [TUNING.alarm_dlq_visible_messages, TUNING.alarm_queue_visible_messages]
        )
        dlq_alarm = next(a for a in alarms if a["Threshold"] == TUNING.alarm_dlq_visible_messages)
        assert dlq_alarm["ComparisonOperator"] == "GreaterThanThreshold"  # DLQ visible > 0
        return
    alarm = _alarm(default_synth, metric)
    assert alarm["Threshold"] == threshold
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    if metric == "Duration":
        assert alarm["ExtendedStatistic"] == "p99"


@pytest.mark.parametrize("function", ["writer", "authorizer"])
def test_any_failed_invocation_of_the_writer_or_the_authorizer_alarms(
    default_synth: Synthesized, function: str
) -> None:
    # Given the default (jwt) stack, When synthesized, Then three minutes with an error alarm
    alarm = _alarm(default_synth, "Errors", function_handler=f"orderpipe_{function}.handler.lambda_handler")
    assert alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == 3


def test_api_5xx_rate_alarm(default_synth: Synthesized) -> None:
    default_synth.template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Threshold": TUNING.alarm_api_5xx_rate_percent,
            "Metrics": Match.array_with(
                [Match.object_like({"Expression": Match.string_like_regexp("errors / requests")})]
            ),
        },
    )


def test_every_alarm_notifies_the_topic_and_is_on_the_dashboard(default_synth: Synthesized) -> None:
    alarms = resources(default_synth, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 8
    topic_id = next(iter(resources(default_synth, "AWS::SNS::Topic")))
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    dashboard = next(iter(resources(default_synth, "AWS::CloudWatch::Dashboard").values()))
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for alarm_id in alarms:
        assert alarm_id in body
    default_synth.template.resource_count_is("AWS::SNS::Subscription", 0)


def test_alarm_email_subscribes(secret_vpc_synth: Synthesized) -> None:
    synth = synthesize({"orderpipe:alarmEmail": "ops@example.com"})
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )


# -- outputs and IAM ----------------------------------------------------------------------------------
def test_outputs(default_synth: Synthesized) -> None:
    outputs = default_synth.template.find_outputs("*")
    assert {
        "ApiUrl",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "CacheTableName",
        "IdempotencyTableName",
        "DashboardName",
        "AuthMode",
        "ApiArn",
        "UsagePlanId",
        "ProducersTableName",
        "UserPoolId",
        "TokenUrl",
    } <= set(outputs)


def _statements(synth: Synthesized) -> list[dict[str, Any]]:
    found = []
    for policy in resources(synth, "AWS::IAM::Policy").values():
        found += policy["Properties"]["PolicyDocument"]["Statement"]
    for role in resources(synth, "AWS::IAM::Role").values():
        for inline in role["Properties"].get("Policies", []):
            found += inline["PolicyDocument"]["Statement"]
    return found


@pytest.mark.parametrize("variant", ["default", "secret_and_existing_vpc"])
def test_no_wildcard_actions(default_synth: Synthesized, secret_vpc_synth: Synthesized, variant: str) -> None:
    synth = default_synth if variant == "default" else secret_vpc_synth
    statements = _statements(synth)
    assert statements
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            assert "*" not in action, f"wildcard action {action!r} in {statement}"


# Data-plane actions (X-Ray's and the VPC ENI policy aside) each function's role may use, and on what.
DATA_PLANE_GRANTS: dict[str, dict[str, str]] = {
    "ingest": {
        "sqs:SendMessage": "OrdersQueue",
        "sqs:GetQueueAttributes": "OrdersQueue",
        "sqs:GetQueueUrl": "OrdersQueue",
        "dynamodb:GetItem": "TablesIdempotency",
        "dynamodb:PutItem": "TablesIdempotency",
        "dynamodb:UpdateItem": "TablesIdempotency",
        "dynamodb:DeleteItem": "TablesIdempotency",
    },
    "writer": {
        "sqs:ReceiveMessage": "OrdersQueue",
        "sqs:DeleteMessage": "OrdersQueue",
        "sqs:ChangeMessageVisibility": "OrdersQueue",
        "sqs:GetQueueAttributes": "OrdersQueue",
        "sqs:GetQueueUrl": "OrdersQueue",
    },
    "reader": {"dynamodb:GetItem": "TablesCache", "dynamodb:PutItem": "TablesCache"},
    "schema": {},
}


def _role_grants(synth: Synthesized, name: str) -> dict[str, set[str]]:
    """action -> the logical ids of the resources it is granted on, for the function's role only."""
    role = function(synth, name)[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    grants: dict[str, set[str]] = {}
    for policy in resources(synth, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = json.dumps(statement.get("Resource"))
            for action in actions:
                grants.setdefault(action, set()).add(targets)
    return grants


@pytest.mark.parametrize("name", list(DATA_PLANE_GRANTS))
def test_least_privilege_grants(default_synth: Synthesized, name: str) -> None:
    """Each function's own role gets exactly the data-plane actions it uses, on its own resources."""
    grants = {
        action: targets
        for action, targets in _role_grants(default_synth, name).items()
        if not action.startswith("xray:")
    }
    expected = DATA_PLANE_GRANTS[name]
    assert set(grants) == set(expected), f"{name}: {sorted(grants)}"
    for action, resource in expected.items():
        assert all(resource in target for target in grants[action]), f"{name} {action} on {grants[action]}"
