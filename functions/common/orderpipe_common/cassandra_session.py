"""The Cassandra cluster and session: built once per process and reused across invocations.

`get_session()` is the cached getter every function uses. After a long idle (a Lambda freeze/thaw)
connections may be dead and the first query can meet NoHostAvailable: `run_with_reconnect` retries
such a call once on a freshly built session.

Credentials come from the Secrets Manager secret (read once per process and kept); when a connect
is refused with AuthenticationFailed (the password was rotated) the secret is read again and the
connect tried once more. TLS and authentication mistakes are configuration errors: they raise
`CassandraTlsError` / `CassandraAuthenticationError` at once, naming the setting to fix, instead of
being retried like an unreachable node.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cassandra import AuthenticationFailed, ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from orderpipe_common.observability import logger
from orderpipe_common.per_process import on_reset
from orderpipe_common.settings import CassandraSettings

_lock = threading.Lock()
_cluster: Cluster | None = None
_session: Session | None = None
# The credentials read for one source (secret ARN or username), kept for the process's life.
_credentials: tuple[tuple[str | None, ...], Credentials | None] | None = None

# OpenSSL verify codes that mean "the certificate is for another name".
_NAME_MISMATCH_CODES = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


class CassandraConfigurationError(RuntimeError):
    """Cassandra refused us for a reason that retrying cannot fix; the message names the setting."""


class CassandraTlsError(CassandraConfigurationError):
    """The TLS handshake failed: wrong CA, or a certificate for another name."""


class CassandraAuthenticationError(CassandraConfigurationError):
    """The credentials were refused, also after reading the secret again."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str  # which setting they came from, for error messages


def consistency(name: str) -> int:
    return int(getattr(ConsistencyLevel, name))


def _variable(field: str) -> str:
    """The environment variable of a CassandraSettings field (error messages name the variable)."""
    assert field in CassandraSettings.model_fields, field
    return field.upper()


def _secrets_client(settings: CassandraSettings) -> Any:
    import boto3  # provided by the Lambda runtime; imported only when a secret is configured
    from botocore.config import Config

    return boto3.client(
        "secretsmanager",
        config=Config(
            connect_timeout=settings.cassandra_secret_connect_timeout_seconds,
            read_timeout=settings.cassandra_secret_read_timeout_seconds,
            retries={"total_max_attempts": settings.cassandra_secret_max_attempts, "mode": "standard"},
        ),
    )


def read_secret_string(settings: CassandraSettings, secret_arn: str) -> str:
    value = _secrets_client(settings).get_secret_value(SecretId=secret_arn)
    return str(value["SecretString"])


def _read_credentials(settings: CassandraSettings) -> Credentials | None:
    if settings.cassandra_secret_arn:
        source = f"{_variable('cassandra_secret_arn')}={settings.cassandra_secret_arn}"
        try:
            values = json.loads(read_secret_string(settings, settings.cassandra_secret_arn))
            return Credentials(username=values["username"], password=values["password"], source=source)
        except (ValueError, KeyError, TypeError) as error:
            raise CassandraAuthenticationError(
                f"the secret {source} must be JSON with 'username' and 'password' ({type(error).__name__})"
            ) from None
    if settings.cassandra_username and settings.cassandra_password:
        source = f"{_variable('cassandra_username')}/{_variable('cassandra_password')}"
        return Credentials(
            username=settings.cassandra_username, password=settings.cassandra_password, source=source
        )
    return None


def _cached_credentials(settings: CassandraSettings, *, refresh: bool = False) -> Credentials | None:
    global _credentials
    source = (settings.cassandra_secret_arn, settings.cassandra_username, settings.cassandra_password)
    if refresh or _credentials is None or _credentials[0] != source:
        _credentials = (source, _read_credentials(settings))
    return _credentials[1]


@on_reset
def forget_credentials() -> None:
    """Drop the credentials read from the secret (the next connect reads it again)."""
    global _credentials
    _credentials = None


def tls_options(settings: CassandraSettings) -> tuple[ssl.SSLContext, dict[str, Any] | None] | None:
    """The driver's `ssl_context` and `ssl_options` for the configured CA and host-name check."""
    if not settings.cassandra_tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.cassandra_tls_ca_file:
        try:
            context.load_verify_locations(cafile=settings.cassandra_tls_ca_file)
        except (OSError, ssl.SSLError) as error:
            raise CassandraTlsError(
                f"{_variable('cassandra_tls_ca_file')}={settings.cassandra_tls_ca_file} cannot be loaded "
                f"as PEM CA certificates: {error}"
            ) from None
    elif settings.cassandra_tls_ca_secret_arn:
        try:
            context.load_verify_locations(
                cadata=read_secret_string(settings, settings.cassandra_tls_ca_secret_arn)
            )
        except ssl.SSLError as error:
            raise CassandraTlsError(
                f"the secret {_variable('cassandra_tls_ca_secret_arn')}={settings.cassandra_tls_ca_secret_arn} "
                f"is not PEM CA certificates: {error}"
            ) from None
    else:
        context.load_default_certs()
    check = settings.cassandra_tls_hostname_check
    if check == "chain_only":
        context.check_hostname = False  # verify_mode stays CERT_REQUIRED: the chain is still checked
        return context, None
    if check == "server_name":
        # The same name for every node, peers included (the driver would otherwise use each IP).
        return context, {"server_hostname": settings.cassandra_tls_server_name}
    return context, None  # ip_san: the driver sets server_hostname to each node's IP address


def build_cluster(settings: CassandraSettings, credentials: Credentials | None = None) -> Cluster:
    profile = ExecutionProfile(
        # Token-aware over DC-aware: each statement goes to a replica in the local DC.
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)),
        consistency_level=consistency(settings.cassandra_write_consistency),
        request_timeout=settings.cassandra_request_timeout_seconds,
    )
    tls = tls_options(settings)
    extra: dict[str, Any] = {}
    if settings.cassandra_protocol_version is not None:
        # Pinned: the driver then never downgrades (a cluster that cannot speak it is refused).
        extra["protocol_version"] = settings.cassandra_protocol_version
    return Cluster(
        contact_points=settings.cassandra_contact_points,
        port=settings.cassandra_port,
        auth_provider=(
            PlainTextAuthProvider(username=credentials.username, password=credentials.password)
            if credentials
            else None
        ),
        ssl_context=tls[0] if tls else None,
        ssl_options=tls[1] if tls else None,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=settings.cassandra_connect_timeout_seconds,
        control_connection_timeout=settings.cassandra_connect_timeout_seconds,
        **extra,
    )


def _errors(error: NoHostAvailable) -> list[BaseException]:
    errors = error.errors if isinstance(error.errors, dict) else {}
    return [e for e in errors.values() if isinstance(e, BaseException)]


def _tls_failure(cause: BaseException) -> tuple[bool, str] | None:
    """(is a name mismatch, OpenSSL's words) when `cause` is a failed certificate check.

    The driver reports a failed handshake as an OSError whose message carries OpenSSL's
    (`Tried connecting to [...]. Last error: [SSL: CERTIFICATE_VERIFY_FAILED] ...`), so the
    message is read as well as the exception type.
    """
    if isinstance(cause, ssl.SSLCertVerificationError):
        return cause.verify_code in _NAME_MISMATCH_CODES, str(cause.verify_message)
    text = str(cause)
    if isinstance(cause, OSError) and "CERTIFICATE_VERIFY_FAILED" in text:
        words = text.split("certificate verify failed:", 1)[-1].strip()
        return ("mismatch" in words.lower(), words)
    return None


def _tls_error(settings: CassandraSettings, error: NoHostAvailable) -> CassandraTlsError | None:
    for cause in _errors(error):
        failure = _tls_failure(cause)
        if failure is None:
            if isinstance(cause, ssl.SSLError):
                return CassandraTlsError(
                    f"TLS handshake failed ({_variable('cassandra_tls')}={settings.cassandra_tls}; "
                    f"does the cluster have client_encryption_options enabled?): {cause}"
                )
            continue
        name_mismatch, words = failure
        if name_mismatch:
            check = settings.cassandra_tls_hostname_check
            expected = (
                f"{_variable('cassandra_tls_server_name')}={settings.cassandra_tls_server_name}"
                if check == "server_name"
                else "the node's IP address"
            )
            return CassandraTlsError(
                f"TLS: a node's certificate does not match {expected} "
                f"({_variable('cassandra_tls_hostname_check')}={check}): {words}"
            )
        where = (
            f"{_variable('cassandra_tls_ca_file')}={settings.cassandra_tls_ca_file}"
            if settings.cassandra_tls_ca_file
            else f"{_variable('cassandra_tls_ca_secret_arn')}={settings.cassandra_tls_ca_secret_arn}"
            if settings.cassandra_tls_ca_secret_arn
            else f"the system trust store ({_variable('cassandra_tls_ca_file')} is not set)"
        )
        return CassandraTlsError(f"TLS: a node's certificate is not signed by a CA in {where}: {words}")
    return None


def _authentication_failed(error: NoHostAvailable) -> bool:
    causes = _errors(error)
    return bool(causes) and any(isinstance(cause, AuthenticationFailed) for cause in causes)


def _connect_once(settings: CassandraSettings, credentials: Credentials | None) -> tuple[Cluster, Session]:
    cluster = build_cluster(settings, credentials)
    try:
        return cluster, cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise


def connect(settings: CassandraSettings) -> tuple[Cluster, Session]:
    """A new cluster and session; on AuthenticationFailed the secret is read again, once."""
    credentials = _cached_credentials(settings)
    try:
        return _connect_once(settings, credentials)
    except NoHostAvailable as error:
        tls_error = _tls_error(settings, error)
        if tls_error is not None:
            raise tls_error from None
        if not _authentication_failed(error):
            raise
        if not settings.cassandra_secret_arn:
            source = credentials.source if credentials else "no credentials are configured"
            raise CassandraAuthenticationError(
                f"Cassandra refused the credentials ({source}): {error}"
            ) from None
    logger.warning("cassandra refused the credentials; reading the secret again and reconnecting once")
    credentials = _cached_credentials(settings, refresh=True)
    try:
        return _connect_once(settings, credentials)
    except NoHostAvailable as error:
        if _authentication_failed(error):
            source = credentials.source if credentials else "?"
            raise CassandraAuthenticationError(
                f"Cassandra refused the credentials from {source}, also after reading it again: {error}"
            ) from None
        raise


def get_session(settings: CassandraSettings) -> Session:
    """The process-wide session (created on first use)."""
    global _cluster, _session
    if _session is not None:
        return _session
    with _lock:
        if _session is None:
            cluster, session = connect(settings)
            _session, _cluster = session, cluster
            logger.info(
                "connected to cassandra",
                extra={
                    "contact_points": settings.cassandra_contact_points,
                    "dc": settings.cassandra_local_dc,
                    "protocol_version": cluster.protocol_version,
                    "tls": settings.cassandra_tls,
                },
            )
        return _session


@on_reset
def reset_session() -> None:
    """Drop the process-wide session (its connections are presumed dead); credentials are kept."""
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
