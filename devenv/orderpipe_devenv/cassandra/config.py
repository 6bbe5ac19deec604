"""The configuration of local nodes: addresses, ports, tokens, cassandra.yaml, logback, JVM flags."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orderpipe_devenv.cassandra.jars import CASSANDRA_VERSION

DEFAULT_CQL_PORT = 9042
DEFAULT_STORAGE_PORT = 7000
DEFAULT_JMX_PORT = 7199
# When a node acknowledges a write: `batch` once its commit log is on disk (what the local nodes run:
# a SIGKILLed single replica keeps every write it acknowledged), `periodic` before the sync that comes
# every 10 s (Cassandra's default, and what a deployed cluster of 3 replicas at LOCAL_QUORUM may run:
# docs/deploy.md, section 4 item 5).
CommitlogSync = Literal["batch", "periodic"]
# SimpleSnitch puts every node in this data center (and rack1): the project's CASSANDRA_LOCAL_DC.
LOCAL_DC = "datacenter1"
CLUSTER_NAME = "orderpipe-local"


def node_address(index: int) -> str:
    """Node 1 is 127.0.0.1, node 2 127.0.0.2, ...: all of 127/8 is loopback on Linux."""
    return f"127.0.0.{index}"


def balanced_tokens(node_count: int) -> list[int]:
    """Murmur3 tokens spread evenly over the ring (as ccm does), one per node."""
    return [(2**64 // node_count) * i - 2**63 for i in range(node_count)]


@dataclass(frozen=True)
class NodeSpec:
    index: int  # 1-based
    address: str
    cql_port: int
    storage_port: int
    jmx_port: int
    initial_token: int
    seeds: tuple[str, ...]
    heap_mb: int
    # client_encryption_options (TLS only, no plaintext) with this PKCS12 keystore, when set.
    tls_keystore: str | None = None
    tls_keystore_password: str | None = None
    # PasswordAuthenticator + CassandraAuthorizer (superuser cassandra/cassandra at first start).
    password_authentication: bool = False
    commitlog_sync: CommitlogSync = "batch"


def _yaml_value(value: Any) -> str:
    return json.dumps(value)  # JSON scalars and lists are valid YAML flow values


def cassandra_yaml(spec: NodeSpec, node_dir: Path) -> str:
    """A minimal cassandra.yaml with 5.0 key names (an unknown key is fatal at start)."""
    settings: dict[str, Any] = {
        "cluster_name": CLUSTER_NAME,
        "num_tokens": 1,
        "initial_token": str(spec.initial_token),
        # Fresh nodes of a new cluster: nothing to stream from anyone.
        "auto_bootstrap": False,
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "endpoint_snitch": "SimpleSnitch",
        "listen_address": spec.address,
        "rpc_address": spec.address,
        "storage_port": spec.storage_port,
        "native_transport_port": spec.cql_port,
        "start_native_transport": True,
        "data_file_directories": [str(node_dir / "data")],
        "commitlog_directory": str(node_dir / "commitlog"),
        "saved_caches_directory": str(node_dir / "saved_caches"),
        "hints_directory": str(node_dir / "hints"),
        "cdc_raw_directory": str(node_dir / "cdc_raw"),
        # By default a write is acknowledged only once its commit log is on disk. With Cassandra's
        # default (periodic, synced every 10 s) a SIGKILLed node came back without the last writes it
        # had acknowledged (31-100 of ~3,000 written in a row, tests/integration/test_cassandra_node.py):
        # the writer had deleted those orders' messages, so with one replica they were lost (the
        # nemesis soak's kill-node). docs/deploy.md says what a deployed cluster needs instead.
        "commitlog_sync": spec.commitlog_sync,
        **({"commitlog_sync_period": "10000ms"} if spec.commitlog_sync == "periodic" else {}),
        # Small segments: less to preallocate on a fresh node.
        "commitlog_segment_size": "8MiB",
        "auto_snapshot": False,
        # A brand-new cluster has no older nodes to stay compatible with.
        "storage_compatibility_mode": "NONE",
        "authenticator": "PasswordAuthenticator" if spec.password_authentication else "AllowAllAuthenticator",
        "authorizer": "CassandraAuthorizer" if spec.password_authentication else "AllowAllAuthorizer",
        # Two cores: keep background work small.
        "concurrent_compactors": 1,
        "concurrent_reads": 16,
        "concurrent_writes": 16,
        "concurrent_counter_writes": 16,
    }
    if spec.password_authentication:
        # No credentials cache: a changed password takes effect at once (the rotation drill relies
        # on the old one being refused on the next connection, not up to 2 s later).
        settings["credentials_validity"] = "0ms"
    lines = [f"{key}: {_yaml_value(value)}" for key, value in settings.items()]
    if spec.tls_keystore:
        lines += [
            "client_encryption_options:",
            "  enabled: true",
            "  optional: false",  # TLS only: a plaintext client is refused
            f"  keystore: {_yaml_value(spec.tls_keystore)}",
            f"  keystore_password: {_yaml_value(spec.tls_keystore_password)}",
            "  store_type: PKCS12",
            "  require_client_auth: false",
        ]
    seeds = ",".join(spec.seeds)
    lines += [
        "seed_provider:",
        "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
        "    parameters:",
        f'      - seeds: "{seeds}"',
    ]
    return "\n".join(lines) + "\n"


LOGBACK_XML = """<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{log_file}</file>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""

# From Cassandra 5.0's conf/jvm17-server.options (plus java.nio and jmx.remote.security, which
# older 5.0 option files also open): without them Java 17 refuses Cassandra's reflective access.
_JAVA17_MODULE_OPTIONS = [
    *(
        f"--add-exports={module}=ALL-UNNAMED"
        for module in (
            "java.base/jdk.internal.misc",
            "java.base/java.lang.ref",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.management/com.sun.jmx.remote.security",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "jdk.unsupported/sun.misc",
            "jdk.compiler/com.sun.tools.javac.file",
            "jdk.attach/sun.tools.attach",
        )
    ),
    *(
        f"--add-opens={module}=ALL-UNNAMED"
        for module in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "java.base/java.lang",
            "java.base/java.util",
            "java.base/java.nio",
            "jdk.management/com.sun.management.internal",
            "jdk.compiler/com.sun.tools.javac",
        )
    ),
]


def java_command(spec: NodeSpec, node_dir: Path, lib_dir: Path, java: str) -> list[str]:
    jamm = sorted(lib_dir.glob("jamm-*.jar"))
    tmp = node_dir / "tmp"
    return [
        java,
        f"-Xms{spec.heap_mb}m",
        f"-Xmx{spec.heap_mb}m",
        "-Xss256k",
        "-XX:+UseG1GC",
        "-XX:+ParallelRefProcEnabled",
        "-XX:MaxTenuringThreshold=1",
        "-XX:MaxGCPauseMillis=300",
        # Two cores: as many GC threads as cores, one concurrent.
        "-XX:ParallelGCThreads=2",
        "-XX:ConcGCThreads=1",
        "-XX:-AlwaysPreTouch",  # touching the whole heap up front costs start time
        "-XX:+UseStringDeduplication",
        "-XX:+PerfDisableSharedMem",
        "-Djava.net.preferIPv4Stack=true",
        "-Djdk.attach.allowAttachSelf=true",
        # Cassandra 5.0 installs a security manager (for UDFs); Java 17 allows that only when asked.
        "-Djava.security.manager=allow",
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dio.netty.allocator.useCacheForAllThreads=true",
        "-Dio.netty.allocator.maxOrder=11",
        *_JAVA17_MODULE_OPTIONS,
        *([f"-javaagent:{jamm[0]}"] if jamm else []),
        # Keep stdout/stderr open (we redirect them into the node's log directory).
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config=file://{node_dir / 'conf' / 'cassandra.yaml'}",
        f"-Dcassandra.storagedir={node_dir}",
        f"-Dcassandra.logdir={node_dir / 'logs'}",
        f"-Dlogback.configurationFile={node_dir / 'conf' / 'logback.xml'}",
        # JMX on loopback only, a distinct port per node.
        f"-Dcassandra.jmx.local.port={spec.jmx_port}",
        # Start fast: nothing to wait for on a fresh loopback cluster.
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        "-Dcassandra.ring_delay_ms=1000",
        # Stop fast: on loopback peers get the shutdown message at once (default: 2 s of sleep).
        "-Dcassandra.shutdown_announce_in_ms=300",
        # Native libraries (JNA, snappy, lz4, zstd) unpack here: a writable, exec-allowed place.
        f"-Djava.io.tmpdir={tmp}",
        f"-Djna.tmpdir={tmp}",
        "-cp",
        f"{lib_dir}/*",
        "org.apache.cassandra.service.CassandraDaemon",
    ]


@dataclass(frozen=True)
class ClusterSettings:
    nodes: int = 1
    cql_port: int = DEFAULT_CQL_PORT
    storage_port: int = DEFAULT_STORAGE_PORT
    jmx_port: int = DEFAULT_JMX_PORT  # node i gets jmx_port + (i - 1)
    heap_mb: int | None = None  # default: 1024 for one node, 768 each for more
    version: str = CASSANDRA_VERSION
    tls_keystore: str | None = None
    tls_keystore_password: str | None = None
    password_authentication: bool = False
    commitlog_sync: CommitlogSync = "batch"

    def node_specs(self) -> list[NodeSpec]:
        if not 1 <= self.nodes <= 9:
            raise ValueError(f"nodes must be 1..9, got {self.nodes}")
        heap = self.heap_mb or (1024 if self.nodes == 1 else 768)
        addresses = [node_address(i) for i in range(1, self.nodes + 1)]
        seeds = tuple(f"{address}:{self.storage_port}" for address in addresses)
        tokens = balanced_tokens(self.nodes)
        return [
            NodeSpec(
                index=i,
                address=addresses[i - 1],
                cql_port=self.cql_port,
                storage_port=self.storage_port,
                jmx_port=self.jmx_port + i - 1,
                initial_token=tokens[i - 1],
                seeds=seeds,
                heap_mb=heap,
                tls_keystore=self.tls_keystore,
                tls_keystore_password=self.tls_keystore_password,
                password_authentication=self.password_authentication,
                commitlog_sync=self.commitlog_sync,
            )
            for i in range(1, self.nodes + 1)
        ]
