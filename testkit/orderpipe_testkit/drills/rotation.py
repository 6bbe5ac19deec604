"""Credential rotation during load (issue 12): the password changes under steady POSTs; nothing is lost.

On a secured node (TLS only, PasswordAuthenticator: `provide_cassandra(secured=True)`) the drill
creates a login role of its own and puts its `{username, password}` into a Secrets Manager secret in
the drill's moto; the whole local pipeline (API Gateway and SQS event-source emulators, the real
handlers in worker processes) runs with only the secret's ARN, as deployed. Under steady POSTs:

1. the operator rotates: `ALTER ROLE ... WITH PASSWORD` and `put_secret_value` with the new one;
2. the load goes on (open connections stay logged in);
3. the node restarts under the load: every function's connections drop, and each writer and reader
   process, which still holds the old password, is refused when it logs in again, reads the secret
   again (`orderpipe_common.cassandra_session.connect`) and logs in with the new one;
4. the load goes on, then stops.

Then: every accepted order is readable with the content that was posted, the orders table holds
exactly the accepted orders (one row each, nothing else), the queue drains and the DLQ is empty.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import boto3
from cassandra.cluster import Cluster, Session

from orderpipe_common import cassandra_session
from orderpipe_common.model import Order, OrderRequest
from orderpipe_common.settings import CassandraSettings, from_mapping
from orderpipe_devenv.cassandra import CassandraCluster, security
from orderpipe_devenv.cassandra.source import CassandraEndpoint
from orderpipe_devenv.runtime.pipeline import LOCAL_CREDENTIALS, LOCAL_REGION, LocalRuntime
from orderpipe_testkit.drills.common import (
    SHORT_TUNING,
    ClusterOutage,
    DrillReport,
    SteadyLoad,
    api_client,
    check,
    dlq_contents,
    drill_runtime,
    wait_drained,
    wait_until,
)
from orderpipe_testkit.sample_orders import order_payload

# The short timings of the other drills, with room for the node's restart (~10-25 s here) in the
# retry budget: (10 - 1) x 12 s visibility = 108 s before a message would reach the DLQ.
ROTATION_TUNING = SHORT_TUNING.with_overrides({"max_receive_count": 10})


def _operator_session(endpoint: CassandraEndpoint) -> tuple[Cluster, Session]:
    """The superuser over the node's TLS: what an operator rotates with (and what the drill counts with)."""
    superuser, password = security.SUPERUSER
    settings = from_mapping(
        CassandraSettings, replace(endpoint, username=superuser, password=password).settings_env("system")
    )
    credentials = cassandra_session.Credentials(username=superuser, password=password, source="operator")
    cluster = cassandra_session.build_cluster(settings, credentials)
    return cluster, cluster.connect()


def _secrets_client(endpoint_url: str) -> Any:
    return boto3.client(
        "secretsmanager",
        endpoint_url=endpoint_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _queryable(session: Session) -> bool:
    try:
        session.execute("SELECT release_version FROM system.local")
    except Exception:  # not reconnected yet
        return False
    return True


def _read_orders(runtime: LocalRuntime, order_ids: Sequence[str], *, timeout: float) -> dict[str, Any]:
    """GET /orders/{id} for each id until all answer 200 or `timeout` passes: the bodies by id."""
    found: dict[str, Any] = {}
    deadline = time.monotonic() + timeout

    def get(client: Any, order_id: str) -> tuple[str, Any]:
        response = client.get(f"/orders/{order_id}")
        return order_id, response.json() if response.status_code == 200 else None

    with api_client(runtime) as client, ThreadPoolExecutor(4) as pool:
        while True:
            missing = [i for i in order_ids if i not in found]
            for order_id, body in pool.map(lambda i: get(client, i), missing):
                if body is not None:
                    found[order_id] = body
            if len(found) == len(set(order_ids)) or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


def _content_differs(body: Any, seed: int) -> bool:
    """Whether the order read back differs from the payload posted with `seed` (compared as models)."""
    posted = OrderRequest.model_validate(order_payload(seed)).model_dump()
    read = Order.model_validate(body).model_dump(include=set(OrderRequest.model_fields))
    return bool(posted != read)


def credential_rotation(
    endpoint: CassandraEndpoint,
    cluster: CassandraCluster,
    *,
    rate_per_second: float = 25,
    before_seconds: float = 6,
    between_seconds: float = 3,
    after_seconds: float = 6,
    streams: int = 3,
) -> DrillReport:
    """Steady POSTs; the role's password rotated, then the node restarted under them; nothing lost."""
    report = DrillReport("rotation")
    started = time.monotonic()
    admin_cluster, admin = _operator_session(endpoint)
    role = f"rotation_{uuid.uuid4().hex[:8]}"
    first_password = secrets.token_urlsafe(18)
    security.password_setup(admin, role=role, password=first_password)
    secret: dict[str, Any] = {}

    def put_secret(moto_endpoint_url: str) -> dict[str, str]:
        client = _secrets_client(moto_endpoint_url)
        created = client.create_secret(
            Name=f"orderpipe/cassandra-{role}",
            SecretString=json.dumps({"username": role, "password": first_password}),
        )
        secret.update(client=client, arn=created["ARN"])
        # The functions get the secret's ARN only (as the stack's cassandraSecretArn gives it).
        return CassandraSettings.environment(
            cassandra_secret_arn=created["ARN"], cassandra_username="", cassandra_password=""
        )

    try:
        with drill_runtime(
            endpoint, name="rotation", tuning=ROTATION_TUNING, cassandra_secrets=put_secret
        ) as runtime:
            keyspace = runtime.config.keyspace
            budget = before_seconds + between_seconds + after_seconds + 60  # + the node's restart
            # Each stream waits for its answer before the next POST: several reach the rate on a
            # busy machine (one stream gets ~10/s through when an answer takes ~100 ms).
            per_stream = rate_per_second / streams
            with ExitStack() as stack:
                loads = [
                    stack.enter_context(
                        SteadyLoad(
                            runtime,
                            rate_per_second=per_stream,
                            max_requests=int(per_stream * budget),
                            seed=k * 10_000_000,
                        )
                    )
                    for k in range(streams)
                ]
                load_started = time.monotonic()
                time.sleep(before_seconds)
                # When the operator rotates: the role's new password first, then the secret's value
                new_password = secrets.token_urlsafe(18)
                rotating = time.monotonic()
                security.alter_password(admin, new_password, role=role)
                secret["client"].put_secret_value(
                    SecretId=secret["arn"],
                    SecretString=json.dumps({"username": role, "password": new_password}),
                )
                report.details["rotation (ALTER ROLE, put_secret_value)"] = (
                    f"{time.monotonic() - rotating:.2f} s"
                )
                report.details["accepted before the rotation"] = sum(len(x.accepted_ids) for x in loads)
                time.sleep(between_seconds)
                # and the node restarts under the load: every connection must log in again
                restarting = time.monotonic()
                outage = ClusterOutage(cluster)
                outage.stop()
                outage.start()
                report.details["node restart"] = f"{time.monotonic() - restarting:.1f} s"
                time.sleep(after_seconds)
                for each in loads:
                    each.stop()
                load_seconds = time.monotonic() - load_started
            accepted_ids = [i for each in loads for i in each.accepted_ids]
            accepted_seeds = {i: seed for each in loads for i, seed in each.accepted_seeds.items()}
            statuses: dict[int, int] = {}
            for each in loads:
                for status, count in each.statuses.items():
                    statuses[status] = statuses.get(status, 0) + count
            report.sent, report.accepted = sum(x.sent for x in loads), len(accepted_ids)
            report.details["answers"] = dict(sorted(statuses.items()))
            report.details["load"] = (
                f"{report.sent} POSTs in {load_seconds:.1f} s = {report.sent / load_seconds:.1f}/s "
                f"(asked: {rate_per_second:g}/s in {streams} streams)"
            )
            check(set(statuses) == {202}, f"POSTs got other answers than 202: {statuses}")
            errors = sum(x.errors for x in loads)
            check(errors == 0, f"{errors} POSTs failed without an answer")
            check(len(set(accepted_ids)) == len(accepted_ids), "one order id was handed out twice")
            # Then the queue drains, nothing is dead-lettered, every order reads back as posted
            draining = time.monotonic()
            wait_drained(runtime, timeout=150)
            report.details["queue drained"] = f"{time.monotonic() - draining:.1f} s after the load stopped"
            dead, undecodable = dlq_contents(runtime)
            report.in_dlq = len(dead) + len(undecodable)
            reading = time.monotonic()
            bodies = _read_orders(runtime, accepted_ids, timeout=30)
            report.details["read back"] = f"{time.monotonic() - reading:.1f} s"
            report.readable = len(bodies)
            lost = set(accepted_ids) - set(bodies)
            report.lost = len(lost)
            if lost:
                report.details["lost ids (first 5)"] = sorted(lost)[:5]
            changed = [i for i, body in bodies.items() if _content_differs(body, accepted_seeds[i])]
            report.details["read back with other content"] = len(changed)
            # and the table holds exactly the accepted orders, one row each
            wait_until(lambda: _queryable(admin), timeout=30, what="the operator's session to reconnect")
            stored = [str(row.order_id) for row in admin.execute(f"SELECT order_id FROM {keyspace}.orders")]  # noqa: S608
            report.details["rows in the orders table"] = len(stored)
            report.details["role's connections on the node after the restart"] = sum(
                1
                for row in admin.execute("SELECT username FROM system_views.clients")
                if row.username == role
            )
    finally:
        try:
            admin.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            admin_cluster.shutdown()
    report.seconds = time.monotonic() - started
    check(report.lost == 0, f"{report.lost} accepted orders lost")
    check(report.in_dlq == 0, f"{report.in_dlq} messages in the DLQ")
    check(not changed, f"{len(changed)} orders read back with other content, e.g. {changed[:3]}")
    check(
        len(stored) == len(set(stored)) == report.accepted,
        f"{len(stored)} rows for {report.accepted} accepted orders",
    )
    check(set(stored) == set(accepted_ids), "the orders table holds other orders than the accepted ones")
    check(
        report.details["role's connections on the node after the restart"] > 0,
        "no function logged in again after the restart",
    )
    return report
