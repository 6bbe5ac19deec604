"""Context validation: clear errors at synth, naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import PREFIX, ContextError, OrderPipeConfig
from tests.infrastructure.conftest import CDK_JSON_CONTEXT, EXISTING_VPC


def config(**overrides: Any) -> OrderPipeConfig:
    context = {**CDK_JSON_CONTEXT, **{PREFIX + k: v for k, v in overrides.items()}}
    return OrderPipeConfig.from_context(context.get)


def test_cdk_json_example_is_valid() -> None:
    parsed = config()
    assert parsed.cassandra.contact_points == ("10.20.1.10", "10.20.2.10", "10.20.3.10")
    assert parsed.existing_vpc is None
    assert parsed.alarm_email is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cassandraContactPoints": None}, "orderpipe:cassandraContactPoints: is not set"),
        ({"cassandraLocalDc": ""}, "orderpipe:cassandraLocalDc: is not set"),
        ({"cassandraCidrs": ["10.0.0.0/33"]}, "orderpipe:cassandraCidrs: '10.0.0.0/33' is not a CIDR block"),
        ({"cassandraCidrs": ["0.0.0.0/0"]}, "0.0.0.0/0 is not allowed"),
        ({"cassandraContactPoints": "10.99.0.1"}, "is in none of orderpipe:cassandraCidrs"),
        ({"cassandraPort": 70000}, "orderpipe:cassandraPort: must be an integer between 1 and 65535"),
        ({"cassandraKeyspace": "Bad-Name"}, "orderpipe:cassandraKeyspace: must match"),
        (
            {"cassandraSecretArn": "my-secret"},
            "orderpipe:cassandraSecretArn: must be a Secrets Manager secret ARN",
        ),
        ({"cassandraTls": "yes"}, "orderpipe:cassandraTls: must be true or false"),
        ({"alarmEmail": "nobody"}, "orderpipe:alarmEmail: must be an e-mail address"),
        ({"tuning": {"writer_batch_sise": 10}}, "unknown tuning setting(s): writer_batch_sise"),
        ({"tuning": {"writer_max_concurrency": 1}}, "writer_max_concurrency must be between 2 and 1000"),
        ({"tuning": {"write_consistency": "SOME"}}, "write_consistency must be one of"),
        ({"tuning": "{not json"}, "orderpipe:tuning: is not a JSON object"),
        ({"vpcSubnetIds": ["subnet-0123456789abcdef0"]}, "is only used with orderpipe:vpcId"),
        ({"vpcId": "vpc-0123456789abcdef0"}, "orderpipe:vpcSubnetIds: is not set"),
        ({"logLevel": "LOUD"}, "orderpipe:logLevel: must be one of"),
    ],
)
def test_invalid_context_fails_with_the_key_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ContextError) as raised:
        config(**overrides)
    assert message in str(raised.value)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ContextError) as raised:
        config(cassandraLocalDc=None, cassandraPort="x", alarmEmail="x")
    text = str(raised.value)
    assert text.count("\n  - ") == 3


def test_cli_style_strings_are_accepted() -> None:
    """`cdk synth -c key=value` passes strings: lists, booleans, objects and numbers parse from them."""
    parsed = config(
        cassandraContactPoints="10.20.1.10, 10.20.2.10",
        cassandraTls="true",
        cassandraPort="9142",
        tuning='{"writer_batch_size": 25}',
        cassandraReplication='{"class": "NetworkTopologyStrategy", "dc1": 5}',
    )
    assert parsed.cassandra.contact_points == ("10.20.1.10", "10.20.2.10")
    assert parsed.cassandra.tls is True
    assert parsed.cassandra.port == 9142
    assert parsed.tuning.writer_batch_size == 25
    assert parsed.cassandra.replication["dc1"] == 5


def test_existing_vpc() -> None:
    parsed = config(**{k.removeprefix(PREFIX): v for k, v in EXISTING_VPC.items()})
    assert parsed.existing_vpc is not None
    assert parsed.existing_vpc.subnet_ids == tuple(EXISTING_VPC["orderpipe:vpcSubnetIds"])
    with pytest.raises(ContextError, match="must have the same length"):
        config(
            **{**{k.removeprefix(PREFIX): v for k, v in EXISTING_VPC.items()}, "vpcRouteTableIds": ["rtb-1"]}
        )
