"""Context validation: clear errors at synth, naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stacks.config import PREFIX, ContextError, OrderPipeConfig
from tests.infrastructure.conftest import ASTRA as ASTRA_CONTEXT
from tests.infrastructure.conftest import (
    ASTRA_BUNDLE_SECRET_ARN,
    ASTRA_TOKEN_SECRET_ARN,
    BASE_CONTEXT,
    CA_FILE,
    CA_SECRET_ARN,
    CDK_JSON_CONTEXT,
    EXISTING_VPC,
    KMS_KEY_ARN,
    NAMED_WITHOUT_A_CLUSTER,
    NO_PEERING,
    PEERING_ID,
    REPO_ROOT,
    SECRET_ARN,
    TRANSIT_GATEWAY_ID,
)
from tests.infrastructure.conftest import KEYSPACES as KEYSPACES_CONTEXT


def config(**overrides: Any) -> OrderPipeConfig:
    context = {**BASE_CONTEXT, **{PREFIX + k: v for k, v in overrides.items()}}
    return OrderPipeConfig.from_context(context.get)


def test_the_example_context_is_valid() -> None:
    parsed = config()
    assert parsed.cassandra.contact_points == ("10.20.1.10", "10.20.2.10", "10.20.3.10")
    assert parsed.existing_vpc is None
    assert parsed.alarm_email is None


def test_cdk_json_as_shipped_names_no_cluster_and_synth_says_which_keys_are_missing() -> None:
    # Given cdk.json alone (what a bare `npx cdk synth` or a deploy that forgets the cluster gets),
    assert not any(key.startswith(PREFIX) for key in CDK_JSON_CONTEXT)
    # when the context is read,
    with pytest.raises(ContextError) as raised:
        OrderPipeConfig.from_context(CDK_JSON_CONTEXT.get)
    # then one problem names every missing key and the managed alternatives, and nothing else.
    text = str(raised.value)
    assert text.count("\n  - ") == 1
    for named in NAMED_WITHOUT_A_CLUSTER:
        assert named in text


def test_the_default_replication_puts_three_replicas_in_the_local_dc() -> None:
    # Given a local DC other than the example's and no replication, when the context is read,
    parsed = config(cassandraLocalDc="eu-west")
    # then the keyspace the schema function creates names that DC (Cassandra 4.0+ refuses unknown DCs).
    assert dict(parsed.cassandra.replication) == {"class": "NetworkTopologyStrategy", "eu-west": 3}


@pytest.mark.parametrize(
    "replication",
    [
        {"class": "NetworkTopologyStrategy", "dc1": 3},
        '{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": 3}',
    ],
)
def test_a_network_topology_replication_without_the_local_dc_is_refused(replication: Any) -> None:
    # Given a replication naming dc1 while the driver's local DC is eu-west, when the context is read,
    with pytest.raises(ContextError) as raised:
        config(cassandraLocalDc="eu-west", cassandraReplication=replication)
    # then synth refuses it, naming both keys and the DCs involved.
    text = str(raised.value)
    assert "orderpipe:cassandraReplication: NetworkTopologyStrategy names dc1 but not" in text
    assert "orderpipe:cassandraLocalDc ('eu-west')" in text


def test_a_simple_strategy_replication_names_no_dc_and_is_accepted() -> None:
    parsed = config(
        cassandraLocalDc="eu-west", cassandraReplication={"class": "SimpleStrategy", "replication_factor": 1}
    )
    assert parsed.cassandra.replication["class"] == "SimpleStrategy"


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
        cassandraTlsHostnameCheck="ip_san",
        cassandraProtocolVersion="4",
        readerReservedConcurrency="7",
        cassandraPort="9142",
        tuning='{"writer_batch_size": 25}',
        cassandraReplication='{"class": "NetworkTopologyStrategy", "dc1": 5}',
    )
    assert parsed.cassandra.contact_points == ("10.20.1.10", "10.20.2.10")
    assert parsed.cassandra.tls is not None
    assert parsed.cassandra.tls.hostname_check == "ip_san"
    assert parsed.cassandra.protocol_version == 4
    assert parsed.reader_reserved_concurrency == 7
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


# -- network path (finding 1) ---------------------------------------------------------------------
EXISTING = {k.removeprefix(PREFIX): v for k, v in EXISTING_VPC.items()}
NEW_VPC_WITHOUT_PATH = {k.removeprefix(PREFIX): v for k, v in NO_PEERING.items()}


def test_a_new_vpc_without_a_network_path_is_refused_naming_the_keys() -> None:
    # Given the new-VPC default without peering or Transit Gateway, when the context is read,
    # then one problem names every key that would give the VPC a path to Cassandra.
    with pytest.raises(ContextError) as raised:
        config(**NEW_VPC_WITHOUT_PATH)
    text = str(raised.value)
    assert text.count("\n  - ") == 1
    for key in ("cassandraPeerVpcId", "cassandraPeerRouteTableIds", "cassandraTransitGatewayId", "vpcId"):
        assert f"orderpipe:{key}" in text


def test_an_existing_vpc_without_a_declared_path_is_refused_naming_the_keys() -> None:
    with pytest.raises(ContextError) as raised:
        config(**{**EXISTING, "cassandraPeeringConnectionId": None})
    text = str(raised.value)
    for key in ("cassandraPeeringConnectionId", "cassandraTransitGatewayId", "cassandraRoutesExist"):
        assert f"orderpipe:{key}" in text


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({}, {"peer_vpc_id": "vpc-0fedcba9876543210", "peer_route_table_ids": ("rtb-0fedcba9876543210",)}),
        (
            {**NEW_VPC_WITHOUT_PATH, "cassandraTransitGatewayId": TRANSIT_GATEWAY_ID},
            {"transit_gateway_id": TRANSIT_GATEWAY_ID},
        ),
        (EXISTING, {"peering_connection_id": PEERING_ID}),
        (
            {**EXISTING, "cassandraPeeringConnectionId": None, "cassandraRoutesExist": True},
            {"routes_exist": True},
        ),
        (
            {
                **EXISTING,
                "cassandraPeeringConnectionId": None,
                "cassandraCidrs": ["10.30.8.0/24"],
                "cassandraContactPoints": "10.30.8.5",
            },
            {"same_vpc": True},
        ),
    ],
    ids=[
        "new_vpc_peering",
        "new_vpc_transit_gateway",
        "existing_vpc_peering",
        "existing_vpc_routes_exist",
        "same_vpc",
    ],
)
def test_each_documented_network_path_is_accepted(overrides: dict[str, Any], path: dict[str, Any]) -> None:
    parsed = config(**overrides)
    for name, value in path.items():
        assert getattr(parsed.network_path, name) == value


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"cassandraTransitGatewayId": TRANSIT_GATEWAY_ID},
            "set only one network path, not orderpipe:cassandraPeerVpcId and orderpipe:cassandraTransitGatewayId",
        ),
        ({"cassandraPeerRouteTableIds": None}, "orderpipe:cassandraPeerRouteTableIds: is not set"),
        (
            {"cassandraPeeringConnectionId": PEERING_ID},
            "orderpipe:cassandraPeeringConnectionId: is only for an existing VPC",
        ),
        ({"cassandraRoutesExist": True}, "orderpipe:cassandraRoutesExist: is only for an existing VPC"),
        (
            {"newVpcCidr": "10.20.0.0/16"},
            "orderpipe:newVpcCidr: 10.20.0.0/16 overlaps orderpipe:cassandraCidrs",
        ),
        ({"cassandraPeerVpcId": "peer"}, "orderpipe:cassandraPeerVpcId: must be a VPC id"),
        (
            {**NEW_VPC_WITHOUT_PATH, "cassandraTransitGatewayId": "tgw"},
            "orderpipe:cassandraTransitGatewayId: must be a Transit Gateway id",
        ),
        (
            {**EXISTING, "cassandraPeerVpcId": "vpc-0fedcba9876543210"},
            "orderpipe:cassandraPeerVpcId: is only for a new VPC",
        ),
        (
            {**EXISTING, "cassandraCidrs": ["10.30.8.0/24"], "cassandraContactPoints": "10.30.8.5"},
            "lie inside orderpipe:vpcCidr",
        ),
    ],
)
def test_inconsistent_network_paths_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ContextError) as raised:
        config(**overrides)
    assert message in str(raised.value)


# -- TLS (finding 2), credentials (3, 5), protocol (4), API and reader (6, 8) ---------------------
TLS = {"cassandraTls": True, "cassandraTlsHostnameCheck": "ip_san"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cassandraTls": True}, "orderpipe:cassandraTlsHostnameCheck: is not set"),
        ({**TLS, "cassandraTlsHostnameCheck": "none"}, "orderpipe:cassandraTlsHostnameCheck: must be one of"),
        ({**TLS, "cassandraTlsHostnameCheck": "server_name"}, "orderpipe:cassandraTlsServerName: is not set"),
        (
            {**TLS, "cassandraTlsServerName": "db.example"},
            "orderpipe:cassandraTlsServerName: is only used with",
        ),
        ({**TLS, "cassandraTlsHostnameCheck": "chain_only"}, "chain_only needs the cluster's own CA"),
        ({**TLS, "cassandraTlsCaFile": "no/such/ca.pem"}, "orderpipe:cassandraTlsCaFile:"),
        ({**TLS, "cassandraTlsCaFile": "README.md"}, "is not a PEM file of CA certificates"),
        (
            {**TLS, "cassandraTlsCaFile": CA_FILE, "cassandraTlsCaSecretArn": CA_SECRET_ARN},
            "set either orderpipe:cassandraTlsCaFile or orderpipe:cassandraTlsCaSecretArn",
        ),
        (
            {**TLS, "cassandraContactPoints": "cassandra.example", "cassandraCidrs": ["10.20.0.0/16"]},
            "every contact point is a DNS name",
        ),
        (
            {"cassandraTlsCaFile": CA_FILE},
            "orderpipe:cassandraTlsCaFile: is only used with orderpipe:cassandraTls=true",
        ),
        (
            {"cassandraSecretKmsKeyArn": KMS_KEY_ARN},
            "orderpipe:cassandraSecretKmsKeyArn: is set but no secret is",
        ),
        (
            {"cassandraSecretArn": SECRET_ARN, "cassandraSecretKmsKeyArn": "alias/mine"},
            "must be a KMS key ARN",
        ),
        (
            {"cassandraProtocolVersion": 6},
            "orderpipe:cassandraProtocolVersion: must be an integer between 3 and 5",
        ),
        (
            {"apiGatewayCloudWatchRole": "delete"},
            "orderpipe:apiGatewayCloudWatchRole: must be existing or create",
        ),
        (
            {"readerReservedConcurrency": 0},
            "orderpipe:readerReservedConcurrency: must be an integer between 1",
        ),
    ],
)
def test_invalid_tls_credentials_and_api_keys_are_refused_naming_the_key(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ContextError) as raised:
        config(**overrides)
    assert message in str(raised.value)


def test_a_ca_file_holding_a_private_key_is_refused(tmp_path: Path) -> None:
    leaked = tmp_path / "ca-and-key.pem"
    leaked.write_text(
        (REPO_ROOT / CA_FILE).read_text() + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(ContextError, match="holds a private key"):
        config(**TLS, cassandraTlsCaFile=str(leaked))


def test_tls_ca_file_and_defaults() -> None:
    parsed = config(**TLS, cassandraTlsCaFile=CA_FILE)
    assert parsed.cassandra.tls is not None
    assert parsed.cassandra.tls.ca_file == REPO_ROOT / CA_FILE
    assert parsed.cassandra.protocol_version is None  # negotiated by default
    assert parsed.api_cloudwatch_role == "existing"  # the account-level role is not managed by default
    assert parsed.reader_reserved_concurrency == 20


# -- backends: self-managed (default), Amazon Keyspaces, Astra DB ----------------------------
KEYSPACES = {k.removeprefix(PREFIX): v for k, v in KEYSPACES_CONTEXT.items()}
ASTRA = {k.removeprefix(PREFIX): v for k, v in ASTRA_CONTEXT.items()}


def test_self_managed_is_the_default_backend() -> None:
    assert config().cassandra.backend == "self-managed"
    assert config().cassandra.in_vpc


def test_keyspaces_needs_no_hosts_and_takes_its_port_replication_and_sigv4() -> None:
    # Given the example with the self-managed keys unset and the backend chosen, when the context is read,
    parsed = config(**KEYSPACES).cassandra
    # then the service's port, its only single-Region strategy and SigV4 with the roles are chosen.
    assert (parsed.backend, parsed.port, parsed.keyspaces_auth) == ("keyspaces", 9142, "sigv4")
    assert dict(parsed.replication) == {"class": "SingleRegionStrategy"}
    assert parsed.secret_arns == () and parsed.in_vpc


def test_keyspaces_with_service_specific_credentials_reads_them_from_the_secret() -> None:
    # The CLI spelling (service-specific) and the settings' one (service_specific) are both accepted.
    for spelling in ("service-specific", "service_specific"):
        parsed = config(**KEYSPACES, keyspacesAuth=spelling, cassandraSecretArn=SECRET_ARN).cassandra
        assert (parsed.keyspaces_auth, parsed.secret_arns) == ("service_specific", (SECRET_ARN,))


def test_astra_takes_a_pinned_v4_and_negotiates_when_unpinned() -> None:
    # Astra DB speaks v4, not v5 (refused below): pinning v4 saves the failed v5 attempt per cold start.
    assert config(**ASTRA, cassandraProtocolVersion="4").cassandra.protocol_version == 4
    assert config(**ASTRA).cassandra.protocol_version is None


def test_astra_runs_outside_the_vpc_reading_the_bundle_and_the_token_from_secrets() -> None:
    parsed = config(**ASTRA)
    assert parsed.cassandra.backend == "astra" and not parsed.cassandra.in_vpc
    assert parsed.existing_vpc is None
    assert set(parsed.cassandra.secret_arns) == {ASTRA_BUNDLE_SECRET_ARN, ASTRA_TOKEN_SECRET_ARN}


@pytest.mark.parametrize(
    ("overrides", "messages"),
    [
        (
            {"cassandraBackend": "scylla"},
            ["orderpipe:cassandraBackend: must be one of self-managed, keyspaces, astra, got 'scylla'"],
        ),
        (
            # A self-managed cluster left in place: every key to unset, with the flags to paste.
            {
                "cassandraBackend": "keyspaces",
                "cassandraReplication": {"class": "NetworkTopologyStrategy", "dc1": 3},
            },
            [
                "orderpipe:cassandraContactPoints, orderpipe:cassandraLocalDc, orderpipe:cassandraCidrs are "
                "not used with orderpipe:cassandraBackend=keyspaces",
                "-c orderpipe:cassandraContactPoints= -c orderpipe:cassandraLocalDc= -c orderpipe:cassandraCidrs=",
                "orderpipe:cassandraPeerVpcId, orderpipe:cassandraPeerRouteTableIds are not used",
                'orderpipe:cassandraReplication: must be {"class": "SingleRegionStrategy"} with keyspaces',
            ],
        ),
        (
            {**KEYSPACES, "keyspacesAuth": "iam"},
            ["orderpipe:keyspacesAuth: must be sigv4 or service-specific"],
        ),
        (
            {**KEYSPACES, "cassandraSecretArn": SECRET_ARN},
            ["orderpipe:cassandraSecretArn: is not used with keyspacesAuth=sigv4"],
        ),
        (
            {**KEYSPACES, "keyspacesAuth": "service-specific"},
            [
                "orderpipe:cassandraSecretArn: is not set: keyspacesAuth=service-specific reads the credentials"
            ],
        ),
        (
            {**KEYSPACES, "tuning": {"write_consistency": "ONE", "read_consistency": "QUORUM"}},
            [
                "Amazon Keyspaces accepts writes at LOCAL_QUORUM only, not ONE",
                "Amazon Keyspaces accepts reads at ONE, LOCAL_ONE, LOCAL_QUORUM only, not QUORUM",
            ],
        ),
        (
            {**KEYSPACES, "cassandraProtocolVersion": 5},
            ["orderpipe:cassandraProtocolVersion: must be an integer between 3 and 4"],
        ),
        (
            {**KEYSPACES, "cassandraTls": True},
            ["orderpipe:cassandraTls is not used with orderpipe:cassandraBackend=keyspaces"],
        ),
        (
            {**KEYSPACES, "astraBundleSecretArn": ASTRA_BUNDLE_SECRET_ARN},
            ["orderpipe:astraBundleSecretArn: is only used with orderpipe:cassandraBackend=astra"],
        ),
        (
            {**ASTRA, "astraBundleSecretArn": None, "cassandraSecretArn": None},
            [
                "orderpipe:astraBundleSecretArn: is not set: the functions read the secure connect bundle",
                "orderpipe:cassandraSecretArn: is not set: with astra it holds the application token",
            ],
        ),
        (
            {**ASTRA, "vpcId": "vpc-0123456789abcdef0"},
            ["orderpipe:vpcId is not used with orderpipe:cassandraBackend=astra"],
        ),
        ({**ASTRA, "keyspacesAuth": "sigv4"}, ["orderpipe:keyspacesAuth is not used with"]),
        (
            {**ASTRA, "cassandraProtocolVersion": 5},
            ["orderpipe:cassandraProtocolVersion: must be an integer between 3 and 4, got 5"],
        ),
        (
            {**ASTRA, "tuning": {"write_consistency": "LOCAL_ONE"}},
            ["Astra DB refuses writes at ONE, LOCAL_ONE, ANY; got LOCAL_ONE"],
        ),
        (
            {"keyspacesAuth": "sigv4"},
            ["orderpipe:keyspacesAuth is not used with orderpipe:cassandraBackend=self-managed"],
        ),
    ],
    ids=[
        "unknown_backend",
        "keyspaces_with_a_self_managed_cluster",
        "keyspaces_unknown_auth",
        "keyspaces_sigv4_with_secret",
        "keyspaces_service_specific_without_secret",
        "keyspaces_consistency",
        "keyspaces_protocol_v5",
        "keyspaces_tls_key",
        "keyspaces_astra_bundle",
        "astra_without_bundle_or_token",
        "astra_in_a_vpc",
        "astra_keyspaces_auth",
        "astra_protocol_v5",
        "astra_write_consistency",
        "self_managed_keyspaces_auth",
    ],
)
def test_a_backend_refuses_keys_it_cannot_use_naming_each(
    overrides: dict[str, Any], messages: list[str]
) -> None:
    # Given a backend with context it cannot use, when the context is read at synth,
    with pytest.raises(ContextError) as raised:
        config(**overrides)
    # then every problem is reported at once, each naming its key.
    for message in messages:
        assert message in str(raised.value)
