"""The Keyspaces backend's connection, opened for real against a local stand-in (issue 18).

No Amazon Keyspaces exists here. The stand-in is a real Cassandra 5.0 node set up the way the
Keyspaces backend expects its endpoint to be:
- TLS only, on port 9142 (the backend's only port), with a certificate whose DNS name is the service
  endpoint's, `cassandra.us-east-1.amazonaws.com`, signed by a throw-away CA the functions trust
  through `CASSANDRA_TLS_CA_FILE` (the override of the shipped Amazon roots);
- PasswordAuthenticator and a login role: the service-specific-credentials path
  (`CASSANDRA_KEYSPACES_AUTH=service_specific`), read from a Secrets Manager secret (moto);
- the keyspace created beforehand by an operator, as one creates it in the Keyspaces console.

The contact point is 127.0.0.1 with `CASSANDRA_TLS_SERVER_NAME` naming the endpoint: the backend
checks every connection's certificate against that name (in AWS the contact point is the name itself
and resolves, through the VPC endpoint's private DNS, to its addresses; this machine cannot make the
real name resolve to 127.0.0.1 without editing /etc/hosts).

What a real Cassandra does not have: `system_schema_mcs`, where the schema function polls Keyspaces'
asynchronous DDL. The stand-in has a keyspace of that name with the columns the function reads, kept
in step with the node's own `system_schema` by a thread of the test (a table or type is listed
`CREATING` once the node has it, `ACTIVE` a second later). That proves the function's polling queries run through the real
driver and that it waits for an object before using it; it does not prove Keyspaces' own tables,
status values or timing (see docs/deploy.md, section 4a).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cassandra.cluster import Session

from orderpipe_common.cassandra_backends import KEYSPACES_PORT, keyspaces_endpoint
from orderpipe_common.cassandra_session import CassandraTlsError
from orderpipe_common.identity import authorizer_context
from orderpipe_common.settings import CassandraSettings, from_mapping
from orderpipe_devenv.aws.resources import Table
from orderpipe_devenv.cassandra import ClusterSettings
from orderpipe_devenv.cassandra.source import CassandraUnavailableError, provide_cassandra
from orderpipe_devenv.lambda_events import (
    LocalLambdaContext,
    proxy_response,
    rest_proxy_event,
    sqs_event_from_bodies,
)
from orderpipe_devenv.processes import stable_port
from orderpipe_reader import handler as reader
from orderpipe_schema.handler import apply_schema
from orderpipe_schema.settings import SchemaSettings
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import SAMPLE_PRODUCER, make_orders, message_body
from orderpipe_writer import handler as writer
from tests.fixtures.aws import MotoServer
from tests.fixtures.cassandra import CassandraEndpoint, cassandra_unavailable
from tests.fixtures.secured_cassandra import superuser_session

pytestmark = pytest.mark.cassandra

REGION = "us-east-1"
ENDPOINT_NAME = keyspaces_endpoint(REGION)
KEYSPACE = f"keyspaces_{uuid.uuid4().hex[:8]}"
MCS = "system_schema_mcs"
FAIL_FAST_SECONDS = 3.0
# The schema function's poll interval here: short, so its wait loop runs several rounds quickly.
POLL_SECONDS = 0.3
# How long the stand-in lists a new table or type as CREATING before ACTIVE.
CREATING_SECONDS = 1.0


def _port_9142_is_free() -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", KEYSPACES_PORT))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def standin() -> Iterator[CassandraEndpoint]:
    """The secured node on 127.0.0.1:9142, its certificate naming the Keyspaces endpoint."""
    if not _port_9142_is_free():
        cassandra_unavailable(f"127.0.0.1:{KEYSPACES_PORT} is taken: the Keyspaces stand-in needs that port")
    settings = ClusterSettings(
        nodes=1, cql_port=KEYSPACES_PORT, storage_port=stable_port(), jmx_port=stable_port()
    )
    try:
        with provide_cassandra(
            "embedded", embedded_settings=settings, secured=True, tls_server_name=ENDPOINT_NAME
        ) as provided:
            yield provided.endpoint
    except CassandraUnavailableError as error:
        cassandra_unavailable(str(error))


@pytest.fixture(scope="module")
def admin(standin: CassandraEndpoint) -> Iterator[Session]:
    """The operator: a superuser over TLS (it checks the node's IP SAN, not the endpoint name)."""
    with superuser_session(standin) as session:
        yield session


def _mirror_once(admin: Session, first_seen: dict[tuple[str, str], float]) -> None:
    """List in system_schema_mcs what the node's system_schema has for KEYSPACE: a table or type
    CREATING when first seen, ACTIVE once it has existed for CREATING_SECONDS (as Keyspaces makes
    them asynchronously), so the schema function always meets CREATING first and has to wait."""
    query = "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s"
    if admin.execute(query, (KEYSPACE,)).one():
        admin.execute(f"INSERT INTO {MCS}.keyspaces (keyspace_name) VALUES (%s)", (KEYSPACE,))
    for kind in ("table", "type"):
        names = admin.execute(
            f"SELECT {kind}_name FROM system_schema.{kind}s WHERE keyspace_name = %s", (KEYSPACE,)
        )
        for (name,) in names:
            seen = first_seen.setdefault((kind, name), time.monotonic())
            status = "ACTIVE" if time.monotonic() - seen >= CREATING_SECONDS else "CREATING"
            admin.execute(
                f"INSERT INTO {MCS}.{kind}s (keyspace_name, {kind}_name, status) VALUES (%s, %s, %s)",
                (KEYSPACE, name, status),
            )


@pytest.fixture(scope="module")
def keyspace(admin: Session, standin: CassandraEndpoint) -> Iterator[str]:
    """KEYSPACE made beforehand by the operator, the role allowed on it, system_schema_mcs kept in step."""
    role = standin.username
    admin.execute(
        f"CREATE KEYSPACE {KEYSPACE} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    admin.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {MCS} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    admin.execute(f"CREATE TABLE IF NOT EXISTS {MCS}.keyspaces (keyspace_name text PRIMARY KEY)")
    for kind in ("table", "type"):
        admin.execute(
            f"CREATE TABLE IF NOT EXISTS {MCS}.{kind}s (keyspace_name text, {kind}_name text, status text, "
            f"PRIMARY KEY (keyspace_name, {kind}_name))"
        )
    admin.execute(f"GRANT SELECT ON KEYSPACE {MCS} TO {role}")
    admin.execute(f"GRANT ALL PERMISSIONS ON KEYSPACE {KEYSPACE} TO {role}")
    stop = threading.Event()

    first_seen: dict[tuple[str, str], float] = {}

    def mirror() -> None:
        while not stop.wait(0.2):
            try:
                _mirror_once(admin, first_seen)
            except Exception:  # a failed round is retried; the schema function's wait then times out
                logging.getLogger(__name__).warning("system_schema_mcs mirror round failed", exc_info=True)

    thread = threading.Thread(target=mirror, name="system-schema-mcs", daemon=True)
    thread.start()
    yield KEYSPACE
    stop.set()
    thread.join(timeout=10)


def secretsmanager(moto: MotoServer) -> Any:
    import boto3

    return boto3.client("secretsmanager", endpoint_url=moto.endpoint_url, region_name=moto.region)


@pytest.fixture(scope="module")
def service_credentials(moto_server: MotoServer, standin: CassandraEndpoint) -> str:
    """The service-specific credentials' secret, as `keyspacesAuth=service-specific` documents it."""
    value = {"username": standin.username, "password": standin.password}
    return str(
        secretsmanager(moto_server).create_secret(
            Name=f"orderpipe/keyspaces-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(value)
        )["ARN"]
    )


def keyspaces_env(standin: CassandraEndpoint, secret_arn: str, **overrides: str) -> dict[str, str]:
    """What the stack gives a function with cassandraBackend=keyspaces, keyspacesAuth=service-specific,
    except the contact point (127.0.0.1, the name given as the TLS server name instead) and the CA."""
    assert standin.tls_ca_file is not None
    env = CassandraSettings.environment(
        cassandra_backend="keyspaces",
        cassandra_contact_points=list(standin.contact_points),
        cassandra_keyspace=KEYSPACE,
        cassandra_keyspaces_auth="service_specific",
        cassandra_secret_arn=secret_arn,
        cassandra_tls_ca_file=standin.tls_ca_file,
        cassandra_tls_server_name=ENDPOINT_NAME,
    )
    env.update(overrides)
    return {name: value for name, value in env.items() if value != ""}


def schema_settings(env: dict[str, str]) -> SchemaSettings:
    return from_mapping(SchemaSettings, {**env, "SCHEMA_DDL_POLL_SECONDS": str(POLL_SECONDS)})


def test_keyspaces_settings_give_the_standins_port_and_protocol(
    standin: CassandraEndpoint, service_credentials: str
) -> None:
    # Given the stack's Keyspaces environment, When the functions read it,
    # Then they connect on the stand-in's port (9142, fixed) with protocol v4 pinned
    parsed = from_mapping(CassandraSettings, keyspaces_env(standin, service_credentials))
    assert (parsed.port, parsed.protocol_version) == (standin.port, 4)


def test_schema_writer_and_reader_work_against_the_standin_over_tls_v4(
    keyspace: str,
    admin: Session,
    standin: CassandraEndpoint,
    service_credentials: str,
    cache_table: Table,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the Keyspaces environment against the stand-in (keyspace made beforehand)
    env = keyspaces_env(standin, service_credentials)
    reset_process_state()
    # When the schema function runs its Keyspaces path: CREATE KEYSPACE IF NOT EXISTS with
    # SingleRegionStrategy (a no-op: the keyspace exists), then each DDL waited for in system_schema_mcs
    report = apply_schema(schema_settings(env))
    # Then every migration is applied, after waiting for the tables the stand-in listed as CREATING
    assert report.keyspace == keyspace and report.applied and not report.already_applied
    assert "waiting for amazon keyspaces" in caplog.text
    listed = {
        row.table_name
        for row in admin.execute(f"SELECT table_name FROM {MCS}.tables WHERE keyspace_name = %s", (keyspace,))
    }
    assert {"schema_migrations", "orders"} <= listed

    # When the writer stores a batch and the reader reads one back, with the same environment
    for name, value in {**env, "CACHE_TABLE_NAME": cache_table.name, "CACHE_TTL_SECONDS": "300"}.items():
        monkeypatch.setenv(name, value)
    reset_process_state()
    orders = make_orders(30, start=910_000)
    response = writer.lambda_handler(
        sqs_event_from_bodies(message_body(o) for o in orders), LocalLambdaContext()
    )
    sample = orders[7]
    answer = proxy_response(
        reader.lambda_handler(
            rest_proxy_event(
                "GET",
                f"/orders/{sample.order_id}",
                resource="/orders/{order_id}",
                authorizer=authorizer_context(SAMPLE_PRODUCER, ["orders/read"]),
            ),
            LocalLambdaContext(function_name="orderpipe-reader"),
        )
    )
    # Then every row is stored (seen by the operator) and the reader returns the order's content
    assert response == {"batchItemFailures": []}
    select = admin.prepare(f"SELECT order_id FROM {keyspace}.orders WHERE order_id IN ?")
    ids = [o.order_id for o in orders]
    assert {row.order_id for row in admin.execute(select, (ids,))} == set(ids)
    assert answer.status == 200, answer
    body = answer.json()
    assert body["order_id"] == str(sample.order_id)
    assert body["customer_id"] == sample.customer_id
    # and the node saw the functions log in as the role, over TLS, speaking protocol v4
    clients = [
        row
        for row in admin.execute("SELECT username, protocol_version, ssl_enabled FROM system_views.clients")
        if row.username == standin.username
    ]
    assert clients, "no connection of the role on the node"
    assert {(row.protocol_version, row.ssl_enabled) for row in clients} == {(4, True)}
    reset_process_state()


def test_a_wrong_endpoint_name_fails_fast_naming_the_setting(
    keyspace: str, standin: CassandraEndpoint, service_credentials: str
) -> None:
    # Given a server name the stand-in's certificate does not carry (another region's endpoint)
    other = keyspaces_endpoint("eu-west-1")
    env = keyspaces_env(standin, service_credentials, CASSANDRA_TLS_SERVER_NAME=other)
    reset_process_state()
    started = time.monotonic()
    # When the schema function connects, Then it fails at once, naming the setting and the name
    with pytest.raises(
        CassandraTlsError, match=rf"does not match CASSANDRA_TLS_SERVER_NAME={re.escape(other)}"
    ):
        apply_schema(schema_settings(env))
    assert time.monotonic() - started < FAIL_FAST_SECONDS
    reset_process_state()


def test_the_shipped_amazon_roots_do_not_trust_the_standin(
    keyspace: str, standin: CassandraEndpoint, service_credentials: str
) -> None:
    # Given no CA override: the backend trusts only the shipped Amazon roots
    env = keyspaces_env(standin, service_credentials, CASSANDRA_TLS_CA_FILE="")
    reset_process_state()
    # When the schema function connects, Then the chain check refuses the throw-away CA, naming the roots
    with pytest.raises(CassandraTlsError, match="not signed by a CA in the Amazon Keyspaces roots"):
        apply_schema(schema_settings(env))
    reset_process_state()
