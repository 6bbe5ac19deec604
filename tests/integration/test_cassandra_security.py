"""Writer, reader and schema on a real node with TLS only and PasswordAuthenticator.

The node (tests/fixtures/secured_cassandra.py) has a certificate made with keytool, signed by a
throw-away CA, carrying its IP and a DNS name; the functions log in as a non-superuser role whose
credentials they read from a Secrets Manager secret (moto server). Nothing here is mocked.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import NoHostAvailable, Session

from orderpipe_common.cassandra_session import CassandraAuthenticationError, CassandraTlsError
from orderpipe_common.identity import authorizer_context
from orderpipe_common.settings import from_mapping
from orderpipe_devenv.aws.resources import Table
from orderpipe_devenv.cassandra import security
from orderpipe_devenv.lambda_events import (
    LocalLambdaContext,
    proxy_response,
    rest_proxy_event,
    sqs_event_from_bodies,
)
from orderpipe_reader import handler as reader
from orderpipe_schema.handler import apply_schema
from orderpipe_schema.settings import SchemaSettings
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import SAMPLE_PRODUCER, make_orders, message_body
from orderpipe_writer import handler as writer
from tests.fixtures.aws import MotoServer
from tests.fixtures.cassandra import CassandraEndpoint, wait_until_queryable

pytestmark = pytest.mark.cassandra

KEYSPACE = f"secured_{uuid.uuid4().hex[:8]}"
# A CA that did not sign the node's certificate (made for the synth tests; no key exists for it).
OTHER_CA = str(Path(__file__).resolve().parents[1] / "infrastructure" / "data" / "cluster-ca.pem")
REPLICATION = {"class": "SimpleStrategy", "replication_factor": 1}
FAIL_FAST_SECONDS = 3.0


def secretsmanager(moto: MotoServer) -> Any:
    import boto3

    return boto3.client("secretsmanager", endpoint_url=moto.endpoint_url, region_name=moto.region)


@pytest.fixture(scope="session")
def credentials_secret(moto_server: MotoServer, secured_endpoint: CassandraEndpoint) -> str:
    """The application role's {username, password}, as the stack's cassandraSecretArn holds them."""
    value = {"username": secured_endpoint.username, "password": secured_endpoint.password}
    created = secretsmanager(moto_server).create_secret(
        Name=f"orderpipe/cassandra-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(value)
    )
    return str(created["ARN"])


def function_env(endpoint: CassandraEndpoint, secret_arn: str, **overrides: str) -> dict[str, str]:
    """What the stack gives a Cassandra function: contact points, TLS settings, the secret's ARN only."""
    env = endpoint.settings_env(KEYSPACE)
    env.pop("CASSANDRA_USERNAME")
    env.pop("CASSANDRA_PASSWORD")
    env["CASSANDRA_SECRET_ARN"] = secret_arn
    env.update(overrides)
    return {name: value for name, value in env.items() if value != ""}


def schema_settings(env: dict[str, str]) -> SchemaSettings:
    return from_mapping(SchemaSettings, env, cassandra_replication=REPLICATION)


@pytest.fixture
def secured_env(
    monkeypatch: pytest.MonkeyPatch,
    secured_endpoint: CassandraEndpoint,
    credentials_secret: str,
    cache_table: Table,
) -> Iterator[dict[str, str]]:
    """The writer's and reader's environment against the secured node (keyspace migrated)."""
    env = function_env(secured_endpoint, credentials_secret)
    apply_schema(schema_settings(env))
    for name, value in {**env, "CACHE_TABLE_NAME": cache_table.name, "CACHE_TTL_SECONDS": "300"}.items():
        monkeypatch.setenv(name, value)
    reset_process_state()
    yield env
    reset_process_state()


def stored_ids(admin: Session, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    select = admin.prepare(f"SELECT order_id FROM {KEYSPACE}.orders WHERE order_id IN ?")
    return {row.order_id for row in admin.execute(select, (ids,))}


def test_schema_writer_and_reader_work_over_tls_as_a_role_from_the_secret(
    secured_env: dict[str, str], secured_admin: Session
) -> None:
    # Given the secured node, the CA file, ip_san and the role's credentials in Secrets Manager
    orders = make_orders(25, start=700_000)
    # When the writer stores a batch and the reader reads one back
    response = writer.lambda_handler(
        sqs_event_from_bodies(message_body(o) for o in orders), LocalLambdaContext()
    )
    answer = proxy_response(
        reader.lambda_handler(
            rest_proxy_event(
                "GET",
                f"/orders/{orders[3].order_id}",
                resource="/orders/{order_id}",
                authorizer=authorizer_context(SAMPLE_PRODUCER, ["orders/read"]),
            ),
            LocalLambdaContext(function_name="orderpipe-reader"),
        )
    )
    # Then every row is there (seen by the operator's session) and the reader returns the order
    assert response == {"batchItemFailures": []}
    assert stored_ids(secured_admin, [o.order_id for o in orders]) == {o.order_id for o in orders}
    assert answer.status == 200, answer
    assert answer.json()["order_id"] == str(orders[3].order_id)


def test_the_node_refuses_plaintext(secured_endpoint: CassandraEndpoint, credentials_secret: str) -> None:
    # A successful connect above is therefore a TLS connection.
    env = function_env(secured_endpoint, credentials_secret, CASSANDRA_TLS="false")
    with pytest.raises(NoHostAvailable):
        apply_schema(schema_settings(env))


@pytest.mark.parametrize(
    "overrides",
    [
        {"CASSANDRA_TLS_HOSTNAME_CHECK": "server_name", "CASSANDRA_TLS_SERVER_NAME": security.SERVER_NAME},
        {"CASSANDRA_TLS_HOSTNAME_CHECK": "chain_only"},
    ],
    ids=["server_name", "chain_only"],
)
def test_the_schema_connects_under_each_hostname_policy(
    secured_endpoint: CassandraEndpoint, credentials_secret: str, overrides: dict[str, str]
) -> None:
    report = apply_schema(schema_settings(function_env(secured_endpoint, credentials_secret, **overrides)))
    assert report.keyspace == KEYSPACE
    reset_process_state()


def test_the_ca_can_come_from_a_secret(
    moto_server: MotoServer, secured_endpoint: CassandraEndpoint, credentials_secret: str
) -> None:
    assert secured_endpoint.tls_ca_file is not None
    pem = Path(secured_endpoint.tls_ca_file).read_text()
    ca_secret = secretsmanager(moto_server).create_secret(
        Name=f"orderpipe/cassandra-ca-{uuid.uuid4().hex[:6]}", SecretString=pem
    )["ARN"]
    env = function_env(
        secured_endpoint, credentials_secret, CASSANDRA_TLS_CA_FILE="", CASSANDRA_TLS_CA_SECRET_ARN=ca_secret
    )
    assert apply_schema(schema_settings(env)).keyspace == KEYSPACE
    reset_process_state()


def test_a_wrong_ca_fails_the_writer_fast_naming_the_setting(
    secured_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASSANDRA_TLS_CA_FILE", OTHER_CA)
    reset_process_state()
    started = time.monotonic()
    with pytest.raises(
        CassandraTlsError, match=f"not signed by a CA in CASSANDRA_TLS_CA_FILE={re.escape(OTHER_CA)}"
    ):
        writer.lambda_handler(sqs_event_from_bodies([message_body(make_orders(1)[0])]), LocalLambdaContext())
    assert time.monotonic() - started < FAIL_FAST_SECONDS


def test_a_wrong_ca_makes_the_reader_answer_503_fast_and_log_the_setting(
    secured_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CASSANDRA_TLS_CA_FILE", OTHER_CA)
    reset_process_state()
    started = time.monotonic()
    answer = proxy_response(
        reader.lambda_handler(
            rest_proxy_event(
                "GET",
                f"/orders/{uuid.uuid4()}",
                resource="/orders/{order_id}",
                authorizer=authorizer_context(SAMPLE_PRODUCER, ["orders/read"]),
            ),
            LocalLambdaContext(function_name="orderpipe-reader"),
        )
    )
    assert time.monotonic() - started < FAIL_FAST_SECONDS
    assert answer.status == 503
    assert f"CASSANDRA_TLS_CA_FILE={OTHER_CA}" in caplog.text


def test_a_hostname_mismatch_fails_the_schema_fast_naming_the_setting(
    secured_endpoint: CassandraEndpoint, credentials_secret: str
) -> None:
    env = function_env(
        secured_endpoint,
        credentials_secret,
        CASSANDRA_TLS_HOSTNAME_CHECK="server_name",
        CASSANDRA_TLS_SERVER_NAME="cassandra.elsewhere.test",
    )
    started = time.monotonic()
    with pytest.raises(
        CassandraTlsError, match=r"does not match CASSANDRA_TLS_SERVER_NAME=cassandra\.elsewhere\.test"
    ):
        apply_schema(schema_settings(env))
    assert time.monotonic() - started < FAIL_FAST_SECONDS


def test_refused_credentials_fail_naming_the_secret(
    moto_server: MotoServer, secured_endpoint: CassandraEndpoint
) -> None:
    wrong = secretsmanager(moto_server).create_secret(
        Name=f"orderpipe/wrong-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"username": secured_endpoint.username, "password": "not-it"}),
    )["ARN"]
    with pytest.raises(
        CassandraAuthenticationError, match=f"CASSANDRA_SECRET_ARN={wrong}.*also after reading it again"
    ):
        apply_schema(schema_settings(function_env(secured_endpoint, wrong)))
    reset_process_state()


def test_rotation_drill_the_writer_rereads_the_secret_and_loses_nothing(
    secured_env: dict[str, str],
    secured_admin: Session,
    secured_node: Any,
    moto_server: MotoServer,
    credentials_secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    orders = make_orders(300, start=800_000)
    bodies = {str(o.order_id): message_body(o) for o in orders}
    pending = list(bodies)  # this test plays the queue: failed records are delivered again
    context = LocalLambdaContext()

    def deliver(count: int) -> None:
        batch, pending[:] = pending[:count], pending[count:]
        event = sqs_event_from_bodies(bodies[i] for i in batch)
        ids = {
            record["messageId"]: order_id for record, order_id in zip(event["Records"], batch, strict=True)
        }
        response = writer.lambda_handler(event, context)
        pending.extend(ids[failure["itemIdentifier"]] for failure in response["batchItemFailures"])

    # Given a writer in the middle of a stream of writes
    for _ in range(3):
        deliver(20)
    # When the operator rotates the password: ALTER ROLE, then the new value into the secret
    new_password = uuid.uuid4().hex
    security.alter_password(secured_admin, new_password)
    secretsmanager(moto_server).put_secret_value(
        SecretId=credentials_secret,
        SecretString=json.dumps({"username": security.APPLICATION_ROLE, "password": new_password}),
    )
    deliver(20)  # open connections stay authenticated: the stream goes on
    # and the node restarts (its connections drop; the writer must log in again)
    secured_node.stop_node(1)
    deliver(20)  # refused while it is down: reported failed, delivered again below
    secured_node.start_node(1)
    wait_until_queryable(secured_admin)
    deadline = time.monotonic() + 90
    while pending and time.monotonic() < deadline:
        deliver(40)
    # Then the writer read the secret again and every order is stored exactly once
    assert not pending, f"{len(pending)} orders were never written"
    assert "reading the secret again" in caplog.text
    assert stored_ids(secured_admin, [o.order_id for o in orders]) == {o.order_id for o in orders}
