"""A real Apache Cassandra node (or a few) on loopback, started with `java` from Maven Central jars.

No Docker: `fetch_jars()` resolves the pinned `org.apache.cassandra:cassandra-all` and its runtime
dependencies with Maven into a cache outside the repository (once; later runs are offline), and
`CassandraCluster` writes a fresh config per run and starts `CassandraDaemon` on 127.0.0.1..N.

No JVM outlives its owner: a cluster is a context manager, every started cluster is also stopped
at interpreter exit (atexit, SIGTERM/SIGHUP turned into a normal exit), and each JVM gets
PR_SET_PDEATHSIG=SIGKILL so even a `kill -9` of the owning Python process takes it down. Only
`detach()` (the CLI's background `start`) lets a cluster outlive its process; the state file
written next to it lets `stop_detached()` end it later.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Self

from orderpipe_dev import maven_jars
from orderpipe_dev.maven_jars import FetchResult

log = logging.getLogger(__name__)

CASSANDRA_VERSION = "5.0.8"
DEFAULT_CQL_PORT = 9042
DEFAULT_STORAGE_PORT = 7000
DEFAULT_JMX_PORT = 7199
# SimpleSnitch puts every node in this data center (and rack1): the project's CASSANDRA_LOCAL_DC.
LOCAL_DC = "datacenter1"
CLUSTER_NAME = "orderpipe-local"
STATE_FILE_NAME = "orderpipe-cassandra.json"
COMPLETE_MARKER = maven_jars.COMPLETE_MARKER

# Printed once native transport listens; the driver can connect from then on.
_CQL_READY_LOG = "Starting listening for CQL clients"
_DEFAULT_START_TIMEOUT_S = 120.0
_DEFAULT_STOP_TIMEOUT_S = 30.0


class CassandraError(RuntimeError):
    """Cassandra could not be provided; the message says why and what to do."""


class JavaNotFoundError(CassandraError):
    pass


class JarFetchError(CassandraError):
    pass


class NodeStartError(CassandraError):
    pass


# --------------------------------------------------------------------------------------------------
# Jars: resolved once from Maven Central into a cache outside the repository
# --------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """`$ORDERPIPE_CACHE_DIR`, else `~/.cache/orderpipe`."""
    configured = os.environ.get("ORDERPIPE_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "orderpipe"


def jar_dir(version: str = CASSANDRA_VERSION) -> Path:
    return cache_root() / "cassandra" / version / "lib"


CASSANDRA_ARTIFACT = "cassandra-all"


def _artifact(version: str) -> maven_jars.Artifact:
    return maven_jars.Artifact("org.apache.cassandra", CASSANDRA_ARTIFACT, version)


def jars_ready(version: str = CASSANDRA_VERSION) -> bool:
    """True when a previous fetch of `version` completed (its marker is written last, then renamed in)."""
    return maven_jars.jars_ready(_artifact(version), jar_dir(version))


def fetch_jars(
    version: str = CASSANDRA_VERSION, *, progress: Callable[[str], None] | None = None
) -> FetchResult:
    """Make sure the runtime jars of `version` are in the cache; download them if not (atomic, locked)."""
    try:
        result = maven_jars.fetch_runtime_jars(_artifact(version), jar_dir(version), progress=progress)
    except maven_jars.MavenFetchError as error:
        raise JarFetchError(str(error)) from error
    if result.downloaded:
        log.info(
            "fetched cassandra %s: %d jars, %.0f MB in %.1f s into %s",
            version,
            result.jar_count,
            result.total_bytes / 1e6,
            result.seconds,
            result.lib_dir,
        )
    return result


# --------------------------------------------------------------------------------------------------
# Configuration of one node
# --------------------------------------------------------------------------------------------------


def node_address(index: int) -> str:
    """Node 1 is 127.0.0.1, node 2 127.0.0.2, ...: all of 127/8 is loopback on Linux."""
    return f"127.0.0.{index}"


def balanced_tokens(node_count: int) -> list[int]:
    """Murmur3 tokens spread evenly over the ring (as ccm does), one per node."""
    return [(2**64 // node_count) * i - 2**63 for i in range(node_count)]


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for test nodes that must not clash with others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


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
        "commitlog_sync": "periodic",
        "commitlog_sync_period": "10000ms",
        # Small segments: less to preallocate on a fresh node.
        "commitlog_segment_size": "8MiB",
        "auto_snapshot": False,
        # A brand-new cluster has no older nodes to stay compatible with.
        "storage_compatibility_mode": "NONE",
        "authenticator": "AllowAllAuthenticator",
        "authorizer": "AllowAllAuthorizer",
        # Two cores: keep background work small.
        "concurrent_compactors": 1,
        "concurrent_reads": 16,
        "concurrent_writes": 16,
        "concurrent_counter_writes": 16,
    }
    lines = [f"{key}: {_yaml_value(value)}" for key, value in settings.items()]
    seeds = ",".join(spec.seeds)
    lines += [
        "seed_provider:",
        "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
        "    parameters:",
        f'      - seeds: "{seeds}"',
    ]
    return "\n".join(lines) + "\n"


_LOGBACK_XML = """<configuration scan="false">
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


# --------------------------------------------------------------------------------------------------
# Process lifetime: no JVM outlives its owner
# --------------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGKILL to the JVM when the process that started it dies.

    Linux ties this to the *thread* that forked: start nodes from a thread that lives as long as
    the node should (the main thread, as pytest fixtures and the CLI do), not a short-lived worker.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


_live_clusters: set[CassandraCluster] = set()
_live_lock = threading.Lock()
_exit_hooks_installed = False


def _stop_all_live_clusters() -> None:
    with _live_lock:
        clusters = list(_live_clusters)
    for cluster in clusters:
        try:
            cluster.stop()
        except Exception:  # at exit, stop as much as possible and keep going
            log.exception("stopping cassandra at exit failed")


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    # Turn a polite termination into a normal exit so atexit (and every `finally`) runs.
    raise SystemExit(128 + signum)


def _install_exit_hooks() -> None:
    global _exit_hooks_installed
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    atexit.register(_stop_all_live_clusters)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            # Only where nobody else handles the signal: never override an application's handler.
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _exit_on_signal)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
        return status.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _is_our_jvm(pid: int, node_dir: Path) -> bool:
    """Guard against pid reuse: the process must be a CassandraDaemon configured under node_dir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [part.decode(errors="replace") for part in cmdline]
    return "org.apache.cassandra.service.CassandraDaemon" in args and any(
        arg == f"-Dcassandra.storagedir={node_dir}" for arg in args
    )


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cql_answers(address: str, port: int, timeout: float = 2.0) -> bool:
    """True when a CQL server answers an OPTIONS request (a real protocol exchange, not just a port)."""
    # Protocol v4 frame: version, flags, stream id (2 bytes), opcode OPTIONS (0x05), body length 0.
    request = bytes([0x04, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00])
    try:
        with socket.create_connection((address, port), timeout=timeout) as connection:
            connection.sendall(request)
            header = b""
            while len(header) < 9:
                chunk = connection.recv(9 - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:
        return False
    # A response frame (0x84) carrying SUPPORTED (0x06).
    return header[0] == 0x84 and header[4] == 0x06


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------------
# Nodes and clusters
# --------------------------------------------------------------------------------------------------


class CassandraNode:
    """One CassandraDaemon JVM with its own directory (conf, data, logs) under the cluster's base dir."""

    def __init__(self, spec: NodeSpec, node_dir: Path, lib_dir: Path, *, java: str) -> None:
        self.spec = spec
        self.node_dir = node_dir
        self.lib_dir = lib_dir
        self.java = java
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.last_start_seconds: float | None = None

    @property
    def address(self) -> str:
        return self.spec.address

    @property
    def log_file(self) -> Path:
        return self.node_dir / "logs" / "system.log"

    @property
    def console_file(self) -> Path:
        return self.node_dir / "logs" / "console.log"

    def write_config(self) -> None:
        for sub in ("conf", "logs", "data", "commitlog", "saved_caches", "hints", "cdc_raw", "tmp"):
            (self.node_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.node_dir / "conf" / "cassandra.yaml").write_text(cassandra_yaml(self.spec, self.node_dir))
        (self.node_dir / "conf" / "logback.xml").write_text(_LOGBACK_XML.format(log_file=self.log_file))

    def is_running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self.pid is not None and _pid_alive(self.pid) and _is_our_jvm(self.pid, self.node_dir)

    def cql_answers(self) -> bool:
        return cql_answers(self.address, self.spec.cql_port)

    def rss_bytes(self) -> int | None:
        return rss_bytes(self.pid) if self.pid is not None and self.is_running() else None

    def start(self, *, timeout: float = _DEFAULT_START_TIMEOUT_S, die_with_parent: bool = True) -> None:
        """Start the JVM and return once CQL answers; on failure the JVM is stopped and the log tail raised."""
        if self.is_running():
            return
        self.write_config()
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        started = time.monotonic()
        with open(self.console_file, "ab") as console:
            self._process = subprocess.Popen(
                java_command(self.spec, self.node_dir, self.lib_dir, self.java),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.node_dir,
                # Own session: a Ctrl-C in the terminal reaches Python, which stops the node in order.
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        self.pid = self._process.pid
        log.info(
            "cassandra node %d starting: pid %d on %s:%d",
            self.spec.index,
            self.pid,
            self.address,
            self.spec.cql_port,
        )
        try:
            self._wait_until_ready(log_offset, started, timeout)
        except BaseException:
            self.stop(timeout=10)
            raise
        self.last_start_seconds = time.monotonic() - started
        log.info(
            "cassandra node %d ready in %.1f s (pid %d, %s:%d)",
            self.spec.index,
            self.last_start_seconds,
            self.pid,
            self.address,
            self.spec.cql_port,
        )

    def _wait_until_ready(self, log_offset: int, started: float, timeout: float) -> None:
        deadline = started + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                code = self._process.returncode if self._process is not None else None
                raise NodeStartError(
                    f"cassandra node {self.spec.index} exited with code {code} during start-up.\n"
                    f"{self.log_file}:\n{_log_tail(self.log_file)}\n{self.console_file}:\n"
                    f"{_log_tail(self.console_file, 15)}"
                )
            if self._log_says_ready(log_offset) and self.cql_answers():
                return
            time.sleep(0.25)
        raise NodeStartError(
            f"cassandra node {self.spec.index} did not answer CQL on {self.address}:{self.spec.cql_port} "
            f"within {timeout:.0f} s.\n{self.log_file}:\n{_log_tail(self.log_file)}"
        )

    def _log_says_ready(self, offset: int) -> bool:
        try:
            with open(self.log_file, "rb") as system_log:
                system_log.seek(offset)
                return _CQL_READY_LOG.encode() in system_log.read()
        except OSError:
            return False

    def stop(self, *, timeout: float = _DEFAULT_STOP_TIMEOUT_S) -> None:
        """SIGTERM (Cassandra drains: memtables flushed), then SIGKILL after `timeout` seconds."""
        pid = self.pid
        if pid is None:
            return
        if not self.is_running():
            self._forget()
            return
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(timeout):
            log.warning(
                "cassandra node %d (pid %d) ignored SIGTERM for %.0f s: killing it",
                self.spec.index,
                pid,
                timeout,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(10)
        log.info(
            "cassandra node %d stopped (pid %d) in %.1f s", self.spec.index, pid, time.monotonic() - started
        )
        self._forget()

    def kill(self) -> None:
        """SIGKILL at once: a crash, not a shutdown (nothing flushed beyond the commit log)."""
        if self.pid is not None and self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait_exit(10)
        self._forget()

    def _wait_exit(self, timeout: float) -> bool:
        if self._process is not None:
            try:
                self._process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid is None or not _pid_alive(self.pid):
                return True
            time.sleep(0.2)
        return False

    def _forget(self) -> None:
        self._process = None
        self.pid = None

    def detach(self) -> None:
        """Stop tracking the child; it keeps running (its pid stays known for the state file)."""
        self._process = None


@dataclass(frozen=True)
class ClusterSettings:
    nodes: int = 1
    cql_port: int = DEFAULT_CQL_PORT
    storage_port: int = DEFAULT_STORAGE_PORT
    jmx_port: int = DEFAULT_JMX_PORT  # node i gets jmx_port + (i - 1)
    heap_mb: int | None = None  # default: 1024 for one node, 768 each for more
    version: str = CASSANDRA_VERSION

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
            )
            for i in range(1, self.nodes + 1)
        ]


@dataclass
class ClusterState:
    """What a detached cluster leaves behind so another process can inspect and stop it."""

    base_dir: str
    settings: dict[str, Any]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = 0.0


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise JavaNotFoundError("no `java` found (set JAVA_HOME or put Java 11/17 on PATH)")
    return java


class CassandraCluster:
    """N nodes on 127.0.0.1..N started one after another; a context manager that always stops them.

    `base_dir=None` means a fresh temporary directory removed on stop; a given base dir is wiped at
    start unless `keep_data` (so a restart on the same data works, e.g. `orderpipe cassandra start
    --keep-data`). Reusing data with a different node count or ports breaks start-up.
    """

    def __init__(
        self,
        settings: ClusterSettings | None = None,
        *,
        base_dir: Path | None = None,
        keep_data: bool = False,
        die_with_parent: bool = True,
    ) -> None:
        self.settings = settings or ClusterSettings()
        self._owns_base_dir = base_dir is None
        self.base_dir = (base_dir or Path(tempfile.mkdtemp(prefix="orderpipe-cassandra-"))).resolve()
        self.keep_data = keep_data
        self.die_with_parent = die_with_parent
        self.nodes: list[CassandraNode] = []

    # -- addresses for clients -----------------------------------------------------------------
    @property
    def contact_points(self) -> list[str]:
        return [node.address for node in self.nodes]

    @property
    def port(self) -> int:
        return self.settings.cql_port

    @property
    def local_dc(self) -> str:
        return LOCAL_DC

    @property
    def state_file(self) -> Path:
        return self.base_dir / STATE_FILE_NAME

    # -- lifetime ------------------------------------------------------------------------------
    def start(self, *, timeout_per_node: float = _DEFAULT_START_TIMEOUT_S) -> Self:
        java = find_java()
        lib = jar_dir(self.settings.version)
        if not jars_ready(self.settings.version):
            raise JarFetchError(
                f"cassandra {self.settings.version} jars are not in {lib}: run `orderpipe cassandra fetch`"
            )
        if self.base_dir.exists() and not self.keep_data and not self._owns_base_dir:
            self._wipe_base_dir()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.nodes = [
            CassandraNode(spec, self.base_dir / f"node{spec.index}", lib, java=java)
            for spec in self.settings.node_specs()
        ]
        _install_exit_hooks()
        with _live_lock:
            _live_clusters.add(self)
        try:
            # One after another: each node joins a ring whose earlier members already answer.
            for node in self.nodes:
                node.start(timeout=timeout_per_node, die_with_parent=self.die_with_parent)
        except BaseException:
            self.stop()
            raise
        self.write_state()
        return self

    def _wipe_base_dir(self) -> None:
        """Empty a given base dir for a fresh start, but only if it is empty or holds our nodes."""
        ours = (self.base_dir / "node1" / "conf" / "cassandra.yaml").is_file()
        if any(self.base_dir.iterdir()) and not ours:
            raise CassandraError(
                f"refusing to wipe {self.base_dir}: it is not empty and holds no orderpipe Cassandra node"
            )
        shutil.rmtree(self.base_dir)

    def stop(self, *, timeout: float = _DEFAULT_STOP_TIMEOUT_S) -> None:
        """Stop every node (last started first) and, for a temporary base dir, remove it."""
        for node in reversed(self.nodes):
            node.stop(timeout=timeout)
        with _live_lock:
            _live_clusters.discard(self)
        if self._owns_base_dir and not self.keep_data:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            self.state_file.unlink(missing_ok=True)

    def stop_node(self, index: int, *, timeout: float = _DEFAULT_STOP_TIMEOUT_S) -> None:
        self.nodes[index - 1].stop(timeout=timeout)
        self.write_state()

    def start_node(self, index: int, *, timeout: float = _DEFAULT_START_TIMEOUT_S) -> None:
        """Start a stopped node again on its own data directory."""
        self.nodes[index - 1].start(timeout=timeout, die_with_parent=self.die_with_parent)
        self.write_state()

    def detach(self) -> ClusterState:
        """Leave the nodes running after this process exits (the CLI's background `start`)."""
        with _live_lock:
            _live_clusters.discard(self)
        for node in self.nodes:
            node.detach()
        return self.write_state()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __hash__(self) -> int:
        return id(self)

    # -- state -----------------------------------------------------------------------------------
    def write_state(self) -> ClusterState:
        state = ClusterState(
            base_dir=str(self.base_dir),
            settings=asdict(self.settings),
            nodes=[
                {
                    **asdict(node.spec),
                    "node_dir": str(node.node_dir),
                    "pid": node.pid,
                    "log": str(node.log_file),
                }
                for node in self.nodes
            ],
            started_at=time.time(),
        )
        if self.base_dir.exists():
            temporary = self.state_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(asdict(state), indent=2))
            temporary.replace(self.state_file)
        return state


@contextlib.contextmanager
def running_cluster(settings: ClusterSettings | None = None, **options: Any) -> Iterator[CassandraCluster]:
    """`with running_cluster() as cluster:` - fetch jars if needed, start, always stop."""
    version = (settings or ClusterSettings()).version
    fetch_jars(version)
    with CassandraCluster(settings, **options) as cluster:
        yield cluster


# --------------------------------------------------------------------------------------------------
# Detached clusters (state file): inspect and stop from another process
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    index: int
    address: str
    cql_port: int
    pid: int | None
    running: bool
    cql_answers: bool
    rss_bytes: int | None
    log: str


def read_state(base_dir: Path) -> ClusterState | None:
    path = base_dir / STATE_FILE_NAME
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return ClusterState(**data)


def _node_running(node: dict[str, Any]) -> bool:
    pid = node.get("pid")
    return pid is not None and _pid_alive(pid) and _is_our_jvm(pid, Path(node["node_dir"]))


def detached_status(base_dir: Path) -> list[NodeStatus]:
    state = read_state(base_dir)
    if state is None:
        return []
    statuses = []
    for node in state.nodes:
        running = _node_running(node)
        statuses.append(
            NodeStatus(
                index=node["index"],
                address=node["address"],
                cql_port=node["cql_port"],
                pid=node.get("pid"),
                running=running,
                cql_answers=running and cql_answers(node["address"], node["cql_port"]),
                rss_bytes=rss_bytes(node["pid"]) if running else None,
                log=node["log"],
            )
        )
    return statuses


def stop_detached(base_dir: Path, *, timeout: float = _DEFAULT_STOP_TIMEOUT_S) -> list[int]:
    """Stop the nodes named in base_dir's state file (last first); returns the pids that were stopped."""
    state = read_state(base_dir)
    if state is None:
        return []
    stopped = []
    for node in reversed(state.nodes):
        if not _node_running(node):
            continue
        pid = int(node["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(pid):
            log.warning("cassandra pid %d ignored SIGTERM for %.0f s: killing it", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.1)
        stopped.append(pid)
    (base_dir / STATE_FILE_NAME).unlink(missing_ok=True)
    return stopped


def default_base_dir() -> Path:
    """Where the CLI keeps a hand-started cluster (its data, logs and state file)."""
    return cache_root() / "cassandra" / "cluster"
