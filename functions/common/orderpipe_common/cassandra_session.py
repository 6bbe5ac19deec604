"""The Cassandra cluster and session: built once per process and reused across invocations.

`get_session()` is the cached getter every function uses. After a long idle (a Lambda freeze/thaw)
connections may be dead and the first query can meet NoHostAvailable: `run_with_reconnect` retries
such a call once on a freshly built session.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from orderpipe_common.observability import logger
from orderpipe_common.per_process import on_reset
from orderpipe_common.settings import CassandraSettings

_lock = threading.Lock()
_cluster: Cluster | None = None
_session: Session | None = None


def consistency(name: str) -> int:
    return int(getattr(ConsistencyLevel, name))


def _credentials(settings: CassandraSettings) -> PlainTextAuthProvider | None:
    if settings.cassandra_secret_arn:
        import boto3  # provided by the Lambda runtime; imported only when a secret is configured

        secret = boto3.client("secretsmanager").get_secret_value(SecretId=settings.cassandra_secret_arn)
        values = json.loads(secret["SecretString"])
        return PlainTextAuthProvider(username=values["username"], password=values["password"])
    if settings.cassandra_username and settings.cassandra_password:
        return PlainTextAuthProvider(
            username=settings.cassandra_username, password=settings.cassandra_password
        )
    return None


def _tls_context(settings: CassandraSettings) -> ssl.SSLContext | None:
    if not settings.cassandra_tls:
        return None
    context = ssl.create_default_context(cafile=settings.cassandra_tls_ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def build_cluster(settings: CassandraSettings) -> Cluster:
    profile = ExecutionProfile(
        # Token-aware over DC-aware: each statement goes to a replica in the local DC.
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)),
        consistency_level=consistency(settings.cassandra_write_consistency),
        request_timeout=settings.cassandra_request_timeout_seconds,
    )
    return Cluster(
        contact_points=settings.cassandra_contact_points,
        port=settings.cassandra_port,
        auth_provider=_credentials(settings),
        ssl_context=_tls_context(settings),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=settings.cassandra_connect_timeout_seconds,
        control_connection_timeout=settings.cassandra_connect_timeout_seconds,
        protocol_version=5,
    )


def get_session(settings: CassandraSettings) -> Session:
    """The process-wide session (created on first use)."""
    global _cluster, _session
    if _session is not None:
        return _session
    with _lock:
        if _session is None:
            cluster = build_cluster(settings)
            _session = cluster.connect()
            _cluster = cluster
            logger.info(
                "connected to cassandra",
                extra={
                    "contact_points": settings.cassandra_contact_points,
                    "dc": settings.cassandra_local_dc,
                },
            )
        return _session


@on_reset
def reset_session() -> None:
    """Drop the process-wide session (its connections are presumed dead)."""
    global _cluster, _session
    with _lock:
        cluster, _cluster, _session = _cluster, None, None
    if cluster is not None:
        try:
            cluster.shutdown()
        except Exception:  # a dead cluster may fail to shut down cleanly; it is discarded anyway
            logger.warning("cassandra cluster shutdown failed", exc_info=True)


def run_with_reconnect[T](settings: CassandraSettings, call: Callable[[Session], T]) -> T:
    """Run `call` with the session; on NoHostAvailable rebuild the session once and retry."""
    try:
        return call(get_session(settings))
    except NoHostAvailable:
        logger.warning("no cassandra host available; reconnecting once")
        reset_session()
        return call(get_session(settings))
