"""The Cassandra cluster and session: built once per process and reused across invocations.

`get_session()` is the cached getter every function uses. After a long idle (a Lambda freeze/thaw)
connections may be dead and the first query can meet NoHostAvailable: `run_with_reconnect` retries
such a call once on a freshly built session.

Credentials come from the Secrets Manager secret (read once per process and kept); when a connect
is refused with AuthenticationFailed (the password was rotated) the secret is read again and the
connect tried once more. TLS and authentication mistakes are configuration errors: they raise
`CassandraTlsError` / `CassandraAuthenticationError` at once, naming the setting to fix, instead of
being retried like an unreachable node.

Connecting is bounded by the caller's deadline. The driver's `Cluster.connect()` tries the contact
points one after another, each for `connect_timeout`, and a node that accepts the TCP connection but
never answers holds it that long: with three such nodes it takes far longer than a reader may wait.
So the connect runs on a thread of its own; a caller waits for it only until its deadline and then
gets `CassandraConnectingError`, while the connect goes on and the next invocation picks up the
session it made. A discarded cluster is shut down in the background for the same reason.

The cluster is built per backend (`CASSANDRA_BACKEND`, see orderpipe_common.cassandra_backends):
a self-managed cluster by contact points with the configured TLS; Amazon Keyspaces on port 9142 over
TLS with the shipped Keyspaces roots, protocol v4, and SigV4 with the function role's credentials (or
service-specific credentials from the secret); Astra DB through its secure connect bundle (read from
its secret and written to the temporary directory once per process) and the application token.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import ssl
import tempfile
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import Any

from cassandra import AuthenticationFailed, ConsistencyLevel, DriverException, OperationTimedOut
from cassandra.auth import AuthProvider, PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    LoadBalancingPolicy,
    TokenAwarePolicy,
)

from orderpipe_common.cassandra_backends import ASTRA_TOKEN_USERNAME, KEYSPACES_CA_FILE
from orderpipe_common.deadlines import Deadline
from orderpipe_common.observability import logger
from orderpipe_common.per_process import on_reset, on_snapshot
from orderpipe_common.settings import CassandraSettings

_lock = threading.Lock()
_cluster: Cluster | None = None
_session: Session | None = None
_connecting: Future[tuple[Cluster, Session]] | None = None
# A call is not started with less time than this left: it could only time out.
MIN_CALL_SECONDS = 0.05
# The credentials read for one source (secret ARN or username), kept for the process's life.
_credentials: tuple[tuple[str | None, ...], Credentials | None] | None = None
# Astra: the secure connect bundle written to the temporary directory, per secret ARN.
_bundle_paths: dict[str, str] = {}

# OpenSSL verify codes that mean "the certificate is for another name".
_NAME_MISMATCH_CODES = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


class CassandraConnectingError(DriverException):
    """The session is not connected yet and the caller's deadline came first (the connect goes on)."""


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


def _read_secret(settings: CassandraSettings, secret_arn: str) -> dict[str, Any]:
    value: dict[str, Any] = _secrets_client(settings).get_secret_value(SecretId=secret_arn)
    return value


def read_secret_string(settings: CassandraSettings, secret_arn: str) -> str:
    return str(_read_secret(settings, secret_arn)["SecretString"])


def _astra_token(text: str) -> str:
    """The token from the secret's text: the bare AstraCS:... string, or JSON {"token": ...}."""
    if text.strip().startswith("{"):
        return str(json.loads(text)["token"])
    return text.strip()


def _read_credentials(settings: CassandraSettings) -> Credentials | None:
    astra = settings.cassandra_backend == "astra"
    if settings.cassandra_secret_arn:
        source = f"{_variable('cassandra_secret_arn')}={settings.cassandra_secret_arn}"
        try:
            text = read_secret_string(settings, settings.cassandra_secret_arn)
            if astra:
                return Credentials(username=ASTRA_TOKEN_USERNAME, password=_astra_token(text), source=source)
            values = json.loads(text)
            return Credentials(username=values["username"], password=values["password"], source=source)
        except (ValueError, KeyError, TypeError) as error:
            shape = (
                "the AstraCS:... token or JSON with 'token'"
                if astra
                else "JSON with 'username' and 'password'"
            )
            raise CassandraAuthenticationError(
                f"the secret {source} must be {shape} ({type(error).__name__})"
            ) from None
    if astra and settings.cassandra_password:
        return Credentials(
            username=ASTRA_TOKEN_USERNAME,
            password=settings.cassandra_password,
            source=_variable("cassandra_password"),
        )
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


def _ca_context(cafile: str | None, cadata: str | None, *, where: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile is None and cadata is None:
        context.load_default_certs()
        return context
    try:
        context.load_verify_locations(cafile=cafile, cadata=cadata)
    except (OSError, ssl.SSLError) as error:
        raise CassandraTlsError(f"{where} cannot be loaded as PEM CA certificates: {error}") from None
    return context


def tls_options(settings: CassandraSettings) -> tuple[ssl.SSLContext, dict[str, Any] | None] | None:
    """The driver's `ssl_context` and `ssl_options` for the backend, the CA and the host-name check.

    Astra: None (the secure connect bundle brings its own, mutual, TLS).
    """
    if settings.cassandra_backend == "keyspaces":
        # Every connection (the contact point and each peer system.peers lists, by IP) presents the
        # service's certificate, so every one is checked against the service endpoint's name.
        context = _ca_context(
            settings.cassandra_tls_ca_file or str(KEYSPACES_CA_FILE), None, where=_trust_source(settings)
        )
        server_name = settings.cassandra_tls_server_name or settings.cassandra_contact_points[0]
        return context, {"server_hostname": server_name}
    if settings.cassandra_backend == "astra" or not settings.cassandra_tls:
        return None
    cadata = None
    if settings.cassandra_tls_ca_secret_arn and not settings.cassandra_tls_ca_file:
        cadata = read_secret_string(settings, settings.cassandra_tls_ca_secret_arn)
    context = _ca_context(settings.cassandra_tls_ca_file, cadata, where=_trust_source(settings))
    check = settings.cassandra_tls_hostname_check
    if check == "chain_only":
        context.check_hostname = False  # verify_mode stays CERT_REQUIRED: the chain is still checked
        return context, None
    if check == "server_name":
        # The same name for every node, peers included (the driver would otherwise use each IP).
        return context, {"server_hostname": settings.cassandra_tls_server_name}
    return context, None  # ip_san: the driver sets server_hostname to each node's IP address


def _trust_source(settings: CassandraSettings) -> str:
    """Where the CA certificates come from, as the setting that names them (for error messages)."""
    if settings.cassandra_tls_ca_file:
        return f"{_variable('cassandra_tls_ca_file')}={settings.cassandra_tls_ca_file}"
    if settings.cassandra_backend == "keyspaces":
        return f"the Amazon Keyspaces roots shipped in the bundle ({KEYSPACES_CA_FILE}; {_variable('cassandra_tls_ca_file')} is not set)"
    if settings.cassandra_tls_ca_secret_arn:
        return f"the secret {_variable('cassandra_tls_ca_secret_arn')}={settings.cassandra_tls_ca_secret_arn}"
    return f"the system trust store ({_variable('cassandra_tls_ca_file')} is not set)"


def _sigv4_provider() -> AuthProvider:
    """SigV4 with the credentials the function runs with (its role's, from the environment)."""
    import boto3  # provided by the Lambda runtime
    from cassandra_sigv4.auth import SigV4AuthProvider

    # Lambda sets AWS_REGION (and AWS_DEFAULT_REGION, which is all boto3 reads by itself).
    session = boto3.Session(region_name=os.environ.get("AWS_REGION") or None)
    if not session.region_name:
        raise CassandraAuthenticationError(
            "SigV4 for Amazon Keyspaces needs a region: AWS_REGION (or AWS_DEFAULT_REGION) is not set"
        )
    if session.get_credentials() is None:
        raise CassandraAuthenticationError(
            "SigV4 for Amazon Keyspaces found no AWS credentials (the function role's, in the environment)"
        )
    provider: AuthProvider = SigV4AuthProvider(session)
    return provider


def auth_provider(settings: CassandraSettings, credentials: Credentials | None) -> AuthProvider | None:
    if settings.cassandra_backend == "keyspaces" and settings.cassandra_keyspaces_auth == "sigv4":
        return _sigv4_provider()
    if credentials is None:
        return None
    return PlainTextAuthProvider(username=credentials.username, password=credentials.password)


def astra_bundle_path(settings: CassandraSettings) -> str:
    """The secure connect bundle as a file: the configured one, or the secret's written once per process.

    The secret holds the zip as SecretBinary (or base64 in SecretString). It goes to the temporary
    directory (/tmp: the only writable place in Lambda), named by its content, readable by us only.
    """
    if settings.cassandra_astra_bundle_file:
        path = settings.cassandra_astra_bundle_file
        if not os.path.isfile(path):
            raise CassandraConfigurationError(
                f"{_variable('cassandra_astra_bundle_file')}={path} is not a file"
            )
        return path
    arn = settings.cassandra_astra_bundle_secret_arn
    assert arn, "checked by CassandraSettings"
    if arn in _bundle_paths and os.path.isfile(_bundle_paths[arn]):
        return _bundle_paths[arn]
    where = f"the secret {_variable('cassandra_astra_bundle_secret_arn')}={arn}"
    value = _read_secret(settings, arn)
    try:
        content = (
            value["SecretBinary"]
            if "SecretBinary" in value
            else base64.b64decode(value["SecretString"], validate=True)
        )
        with zipfile.ZipFile(io.BytesIO(content)) as bundle:
            if "config.json" not in bundle.namelist():
                raise ValueError("no config.json in the zip")
    except (KeyError, ValueError, zipfile.BadZipFile) as error:
        raise CassandraConfigurationError(
            f"{where} must hold the secure connect bundle zip (SecretBinary, or base64 in SecretString): {error}"
        ) from None
    path = os.path.join(
        tempfile.gettempdir(), f"orderpipe-astra-bundle-{hashlib.sha256(content).hexdigest()[:16]}.zip"
    )
    staging = f"{path}.{os.getpid()}.{threading.get_ident()}"
    with open(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(content)
    os.replace(staging, path)
    _bundle_paths[arn] = path
    return path


@on_reset
def forget_bundle() -> None:
    _bundle_paths.clear()


def _execution_profile(settings: CassandraSettings, policy: LoadBalancingPolicy) -> ExecutionProfile:
    return ExecutionProfile(
        load_balancing_policy=policy,
        consistency_level=consistency(settings.cassandra_write_consistency),
        request_timeout=settings.cassandra_request_timeout_seconds,
    )


def _load_balancing(settings: CassandraSettings) -> LoadBalancingPolicy:
    local_dc = DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)
    if settings.cassandra_backend == "keyspaces":
        # Keyspaces' peers are service endpoints (one per AZ through a VPC endpoint), not replicas
        # owning token ranges: token awareness would route nothing better.
        return local_dc
    # Token-aware over DC-aware: each statement goes to a replica in the local DC.
    return TokenAwarePolicy(local_dc)


def build_cluster(settings: CassandraSettings, credentials: Credentials | None = None) -> Cluster:
    """The driver's Cluster for the configured backend, not connected.

    Astra: building it reads the bundle and asks the bundle's metadata service for the hosts.
    """
    options: dict[str, Any] = {
        "auth_provider": auth_provider(settings, credentials),
        "execution_profiles": {EXEC_PROFILE_DEFAULT: _execution_profile(settings, _load_balancing(settings))},
        "connect_timeout": settings.cassandra_connect_timeout_seconds,
        "control_connection_timeout": settings.cassandra_connect_timeout_seconds,
        # The driver's default waits up to 10 minutes between attempts to reach a node that was down;
        # after a partition heals the node should be used again within seconds.
        "reconnection_policy": ExponentialReconnectionPolicy(base_delay=0.5, max_delay=10.0),
    }
    if settings.protocol_version is not None:
        # Pinned: the driver then never downgrades (a cluster that cannot speak it is refused).
        options["protocol_version"] = settings.protocol_version
    if settings.cassandra_backend == "astra":
        cloud = {
            "secure_connect_bundle": astra_bundle_path(settings),
            # The driver unpacks the bundle next to it unless told to use the temporary directory.
            "use_default_tempdir": True,
            "connect_timeout": settings.cassandra_connect_timeout_seconds,
        }
        try:
            return Cluster(cloud=cloud, **options)
        except ValueError as error:  # an unreadable bundle
            raise CassandraConfigurationError(f"the Astra secure connect bundle: {error}") from None
    tls = tls_options(settings)
    return Cluster(
        contact_points=settings.cassandra_contact_points,
        port=settings.port,
        ssl_context=tls[0] if tls else None,
        ssl_options=tls[1] if tls else None,
        **options,
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


def _keyspaces_server_name(settings: CassandraSettings) -> str:
    """The name Keyspaces' certificate is checked against, as the setting that gives it."""
    if settings.cassandra_tls_server_name:
        return f"{_variable('cassandra_tls_server_name')}={settings.cassandra_tls_server_name}"
    return (
        f"the service endpoint's name {settings.cassandra_contact_points[0]} "
        f"(the first of {_variable('cassandra_contact_points')})"
    )


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
            if settings.cassandra_backend == "keyspaces":
                # Checked against CASSANDRA_TLS_SERVER_NAME when set, else the contact point.
                return CassandraTlsError(
                    f"TLS: the endpoint's certificate does not match {_keyspaces_server_name(settings)}: {words}"
                )
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
        return CassandraTlsError(
            f"TLS: a node's certificate is not signed by a CA in {_trust_source(settings)}: {words}"
        )
    return None


def _authentication_failed(error: NoHostAvailable) -> bool:
    causes = _errors(error)
    return bool(causes) and any(isinstance(cause, AuthenticationFailed) for cause in causes)


def _connect_once(settings: CassandraSettings, credentials: Credentials | None) -> tuple[Cluster, Session]:
    cluster = build_cluster(settings, credentials)
    try:
        return cluster, cluster.connect()
    except BaseException:
        _shutdown_in_background(cluster)
        raise


def _credentials_source(settings: CassandraSettings, credentials: Credentials | None) -> str:
    if settings.cassandra_backend == "keyspaces" and settings.cassandra_keyspaces_auth == "sigv4":
        return (
            "SigV4 with the function role's credentials: its policy must allow cassandra:Select on the "
            "system keyspaces and cassandra:Select/Modify on the keyspace's tables"
        )
    return credentials.source if credentials else "no credentials are configured"


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
            raise CassandraAuthenticationError(
                f"Cassandra refused the credentials ({_credentials_source(settings, credentials)}): {error}"
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


def _connect_in_background(settings: CassandraSettings) -> Future[tuple[Cluster, Session]]:
    future: Future[tuple[Cluster, Session]] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(connect(settings))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, name="cassandra-connect", daemon=True).start()
    return future


def get_session(settings: CassandraSettings, deadline: Deadline | None = None) -> Session:
    """The process-wide session, connecting on first use.

    With a deadline, waits for the connect only until then and raises CassandraConnectingError
    (the connect goes on; a later call gets its session). NoHostAvailable (or a configuration
    error) when the connect failed.
    """
    global _cluster, _session, _connecting
    with _lock:
        if _session is not None:
            return _session
        if _connecting is None:
            _connecting = _connect_in_background(settings)
        connecting = _connecting
    try:
        cluster, session = connecting.result(timeout=deadline.remaining() if deadline else None)
    except FutureTimeoutError:
        raise CassandraConnectingError(
            "still connecting to cassandra when the deadline came (the connect goes on)"
        ) from None
    except BaseException:
        with _lock:
            if _connecting is connecting:
                _connecting = None  # the next call tries again
        raise
    with _lock:
        if _connecting is connecting:
            _connecting, _cluster, _session = None, cluster, session
            logger.info(
                "connected to cassandra",
                extra={
                    "backend": settings.cassandra_backend,
                    "contact_points": settings.cassandra_contact_points,
                    "dc": settings.cassandra_local_dc,
                    "protocol_version": cluster.protocol_version,
                    "tls": settings.cassandra_tls,
                },
            )
        if _session is None:  # reset while it connected (reset_session shuts that cluster down)
            raise CassandraConnectingError("the session was reset while connecting")
        return _session


def call_bounded[T](call: Callable[[], T], deadline: Deadline | None) -> T:
    """`call()` for a blocking driver call that takes no timeout (`set_keyspace`, `prepare`: they wait
    up to the driver's 10 s default, twice for `prepare`), waited for only until `deadline`.

    Runs on a thread of its own; past the deadline raises OperationTimedOut and leaves the call to
    finish (or time out) on that thread.
    """
    if deadline is None:
        return call()
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, name="cassandra-call", daemon=True).start()
    try:
        return future.result(timeout=deadline.remaining())
    except FutureTimeoutError:
        raise OperationTimedOut(errors={"deadline": "no answer before the invocation's deadline"}) from None


def _shutdown_in_background(cluster: Cluster) -> None:
    """Shut a discarded cluster down without waiting: it may be stuck connecting to a silent node."""

    def shutdown() -> None:
        try:
            cluster.shutdown()
        except Exception:  # a dead cluster may fail to shut down cleanly; it is discarded anyway
            logger.warning("cassandra cluster shutdown failed", exc_info=True)

    threading.Thread(target=shutdown, name="cassandra-shutdown", daemon=True).start()


@on_reset
def reset_session() -> None:
    """Drop the process-wide session (its connections are presumed dead), and any connect under way;
    credentials are kept."""
    global _cluster, _session, _connecting
    with _lock:
        cluster, connecting = _cluster, _connecting
        _cluster, _session, _connecting = None, None, None
    if cluster is not None:
        _shutdown_in_background(cluster)
    if connecting is not None:
        connecting.add_done_callback(
            lambda done: _shutdown_in_background(done.result()[0]) if done.exception() is None else None
        )


@on_snapshot
def close_session() -> None:
    """Shut the session down and wait for it (before a SnapStart snapshot: `reset_session` shuts down
    in the background, which the snapshot would freeze half done)."""
    global _cluster, _session
    with _lock:
        cluster = _cluster
        _cluster, _session = None, None
    if cluster is not None:
        cluster.shutdown()


def run_with_reconnect[T](
    settings: CassandraSettings, call: Callable[[Session], T], deadline: Deadline | None = None
) -> T:
    """Run `call` with the session; on NoHostAvailable rebuild the session once and retry.

    With a deadline, neither the connect nor the retry outlasts it (`call` bounds its own requests).
    """
    try:
        return call(get_session(settings, deadline))
    except NoHostAvailable:
        if deadline is not None and deadline.remaining() < MIN_CALL_SECONDS:
            raise
        logger.warning("no cassandra host available; reconnecting once")
        reset_session()
        return call(get_session(settings, deadline))
