"""Where Cassandra comes from, for the tests and the local runtime alike.

In this order:
1. an existing cluster named by environment: CASSANDRA_CONTACT_POINTS (+ CASSANDRA_PORT,
   CASSANDRA_LOCAL_DC, CASSANDRA_USERNAME/CASSANDRA_PASSWORD);
2. a testcontainers Cassandra container, when a Docker engine answers;
3. the embedded node (orderpipe_devenv.cassandra.node), fetching its jars if needed.
`ORDERPIPE_CASSANDRA_SOURCE=environment|container|embedded` forces one of them.

`secured=True` (`orderpipe run --cassandra-tls`, the secured tests) starts the embedded node with
TLS only (certificates made with keytool, see `security`) and PasswordAuthenticator, and hands out an
endpoint for the application role, with the CA and the host-name policy the functions use.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from orderpipe_common.cassandra_backends import SELF_MANAGED_PORT
from orderpipe_common.settings import CassandraSettings
from orderpipe_devenv import cassandra as local_cassandra
from orderpipe_devenv.cassandra import security
from orderpipe_devenv.processes import JavaNotFoundError, find_java, stable_port

log = logging.getLogger("orderpipe.cassandra")

Source = Literal["environment", "container", "embedded"]
SOURCES: tuple[Source, ...] = ("environment", "container", "embedded")
CONTAINER_IMAGE = f"cassandra:{local_cassandra.CASSANDRA_VERSION}"


class CassandraUnavailableError(RuntimeError):
    """No Cassandra could be had; the message says why."""


@dataclass(frozen=True)
class CassandraEndpoint:
    contact_points: tuple[str, ...]
    port: int
    local_dc: str
    username: str | None
    password: str | None
    source: Source
    # TLS as the functions see it (CassandraSettings' cassandra_tls_*); None: plaintext.
    tls_ca_file: str | None = None
    tls_hostname_check: str | None = None
    tls_server_name: str | None = None

    def settings_env(self, keyspace: str) -> dict[str, str]:
        """The environment `CassandraSettings` reads, for this endpoint and `keyspace`."""
        # Consistency is left to its default, the deployment's (on replication factor 1 LOCAL_QUORUM
        # is one replica).
        tls = self.tls_ca_file is not None
        return CassandraSettings.environment(
            cassandra_contact_points=list(self.contact_points),
            cassandra_port=self.port,
            cassandra_local_dc=self.local_dc,
            cassandra_keyspace=keyspace,
            cassandra_username=self.username if self.password else None,
            cassandra_password=self.password if self.username else None,
            cassandra_tls=True if tls else None,
            cassandra_tls_ca_file=self.tls_ca_file,
            cassandra_tls_hostname_check=(self.tls_hostname_check or "ip_san") if tls else None,
            cassandra_tls_server_name=self.tls_server_name if tls else None,
        )


@dataclass(frozen=True)
class ProvidedCassandra:
    endpoint: CassandraEndpoint
    embedded: local_cassandra.CassandraCluster | None  # set only when the source is the embedded node


def from_environment() -> CassandraEndpoint | None:
    def variable(name: str) -> str | None:
        return os.environ.get(CassandraSettings.variable(name)) or None

    hosts = (variable("cassandra_contact_points") or "").strip()
    if not hosts:
        return None
    return CassandraEndpoint(
        contact_points=tuple(host.strip() for host in hosts.split(",") if host.strip()),
        port=int(variable("cassandra_port") or SELF_MANAGED_PORT),
        local_dc=variable("cassandra_local_dc") or local_cassandra.LOCAL_DC,
        username=variable("cassandra_username"),
        password=variable("cassandra_password"),
        source="environment",
        tls_ca_file=variable("cassandra_tls_ca_file"),
        tls_hostname_check=variable("cassandra_tls_hostname_check"),
        tls_server_name=variable("cassandra_tls_server_name"),
    )


def docker_engine_answers(timeout_seconds: float = 2.0) -> bool:
    """Fast: without DOCKER_HOST or a docker socket there is nothing to ask (no client import)."""
    sockets = [Path("/var/run/docker.sock"), Path.home() / ".docker" / "run" / "docker.sock"]
    if runtime_dir := os.environ.get("XDG_RUNTIME_DIR"):
        sockets.append(Path(runtime_dir) / "docker.sock")
    if not os.environ.get("DOCKER_HOST") and not any(path.exists() for path in sockets):
        return False
    try:
        import docker

        client = docker.from_env(timeout=int(max(1, timeout_seconds)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure to reach the engine means "no Docker here"
        return False


@contextmanager
def _from_container() -> Iterator[ProvidedCassandra]:
    try:
        from testcontainers.community.cassandra import CassandraContainer
    except ImportError:  # older testcontainers layouts
        from testcontainers.cassandra import CassandraContainer

    container = CassandraContainer(CONTAINER_IMAGE)
    try:
        container.start()
    except Exception as error:
        raise CassandraUnavailableError(
            f"the Cassandra container ({CONTAINER_IMAGE}) did not start: {error}"
        ) from error
    try:
        ((host, port),) = container.get_contact_points()
        endpoint = CassandraEndpoint(
            contact_points=(host,),
            port=int(port),
            local_dc=container.get_local_datacenter(),
            username=None,
            password=None,
            source="container",
        )
        yield ProvidedCassandra(endpoint, None)
    finally:
        container.stop()


def embedded_endpoint(cluster: local_cassandra.CassandraCluster) -> CassandraEndpoint:
    """Where an embedded cluster started here listens."""
    return CassandraEndpoint(
        contact_points=tuple(cluster.contact_points),
        port=cluster.port,
        local_dc=cluster.local_dc,
        username=None,
        password=None,
        source="embedded",
    )


@contextmanager
def _from_embedded_node(
    settings: local_cassandra.ClusterSettings,
    *,
    secured: bool = False,
    tls_server_name: str = security.SERVER_NAME,
) -> Iterator[ProvidedCassandra]:
    try:
        find_java()
        local_cassandra.fetch_jars()
    except (JavaNotFoundError, local_cassandra.CassandraError) as error:
        raise CassandraUnavailableError(str(error)) from error
    with ExitStack() as stack:
        material: security.TlsMaterial | None = None
        if secured:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orderpipe-cassandra-tls-")))
            addresses = [local_cassandra.node_address(i) for i in range(1, settings.nodes + 1)]
            try:
                material = security.make_tls_material(
                    folder, addresses=addresses, server_name=tls_server_name
                )
            except local_cassandra.CassandraError as error:
                raise CassandraUnavailableError(str(error)) from error
            settings = replace(
                settings,
                tls_keystore=str(material.keystore),
                tls_keystore_password=material.keystore_password,
                password_authentication=True,
            )
        cluster = local_cassandra.CassandraCluster(settings)
        try:
            cluster.start()
        except local_cassandra.CassandraError as error:
            raise CassandraUnavailableError(f"the embedded node did not start: {error}") from error
        stack.callback(cluster.stop)
        endpoint = embedded_endpoint(cluster)
        if material is not None:
            endpoint = replace(
                endpoint,
                tls_ca_file=str(material.ca_pem),
                tls_hostname_check="ip_san",
                tls_server_name=None,
            )
            endpoint = replace(
                endpoint, username=security.APPLICATION_ROLE, password=_create_application_role(endpoint)
            )
        yield ProvidedCassandra(endpoint, cluster)


def _create_application_role(endpoint: CassandraEndpoint) -> str:
    """As the superuser, create the role the functions log in as; returns its (random) password."""
    from orderpipe_common import cassandra_session
    from orderpipe_common.settings import CassandraSettings, from_mapping

    superuser, superuser_password = security.SUPERUSER
    admin = replace(endpoint, username=superuser, password=superuser_password)
    settings = from_mapping(CassandraSettings, admin.settings_env("system"))
    cluster, session = cassandra_session.connect(settings)
    try:
        password = secrets.token_urlsafe(18)
        security.password_setup(session, password=password)
        return password
    finally:
        cluster.shutdown()


def free_port_cluster_settings() -> local_cassandra.ClusterSettings:
    """One node on free ports: never clashes with a hand-started node or another session, and finds
    them free again when a drill kills it and starts it again."""
    return local_cassandra.ClusterSettings(
        nodes=1, cql_port=stable_port(), storage_port=stable_port(), jmx_port=stable_port()
    )


@contextmanager
def provide_cassandra(
    forced: str | None = None,
    *,
    embedded_settings: local_cassandra.ClusterSettings | None = None,
    secured: bool = False,
    tls_server_name: str = security.SERVER_NAME,
) -> Iterator[ProvidedCassandra]:
    """A Cassandra for the duration of the `with` block (stopped at its end if we started it).

    secured: TLS + password authentication; only the embedded node can be made so here (an existing
    cluster brings its own, through CASSANDRA_TLS_* and CASSANDRA_USERNAME/PASSWORD). Its certificate
    names `tls_server_name` (a DNS SAN) beside the nodes' IP addresses.
    """
    forced = (
        (forced if forced is not None else os.environ.get("ORDERPIPE_CASSANDRA_SOURCE", "")).strip().lower()
    )
    if forced and forced not in SOURCES:
        raise CassandraUnavailableError(
            f"ORDERPIPE_CASSANDRA_SOURCE={forced!r}: use one of {', '.join(SOURCES)}"
        )

    if secured and forced not in {"", "embedded"}:
        raise CassandraUnavailableError(f"a secured Cassandra is the embedded node only, not {forced!r}")
    if forced in {"", "environment"} and not secured:
        endpoint = from_environment()
        if endpoint is not None:
            log.info(
                "using the Cassandra cluster named by CASSANDRA_CONTACT_POINTS: %s", endpoint.contact_points
            )
            yield ProvidedCassandra(endpoint, None)
            return
        if forced:
            raise CassandraUnavailableError(
                "ORDERPIPE_CASSANDRA_SOURCE=environment but CASSANDRA_CONTACT_POINTS is not set"
            )

    if not secured and (forced == "container" or (not forced and docker_engine_answers())):
        log.info("starting a Cassandra container (%s)", CONTAINER_IMAGE)
        with _from_container() as provided:
            yield provided
        return

    log.info(
        "starting the embedded Cassandra %s node (no Docker engine here)", local_cassandra.CASSANDRA_VERSION
    )
    with _from_embedded_node(
        embedded_settings or free_port_cluster_settings(), secured=secured, tls_server_name=tls_server_name
    ) as provided:
        yield provided
