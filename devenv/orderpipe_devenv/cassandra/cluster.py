"""A local cluster: N nodes on 127.0.0.1..N, started in order, always stopped (or knowingly detached).

No JVM outlives its owner: a cluster is a context manager, every started cluster is also stopped
at interpreter exit (atexit, SIGTERM/SIGHUP turned into a normal exit), and each JVM gets
PR_SET_PDEATHSIG=SIGKILL so even a `kill -9` of the owning Python process takes it down. Only
`detach()` (the CLI's background `start`) lets a cluster outlive its process; the state file
written next to it lets `orderpipe_devenv.cassandra.detached.stop_detached()` end it later.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Self

from orderpipe_devenv.cassandra.config import LOCAL_DC, ClusterSettings
from orderpipe_devenv.cassandra.errors import CassandraError, JarFetchError
from orderpipe_devenv.cassandra.jars import fetch_jars, jar_dir, jars_ready
from orderpipe_devenv.cassandra.node import DEFAULT_START_TIMEOUT_S, DEFAULT_STOP_TIMEOUT_S, CassandraNode
from orderpipe_devenv.processes import JavaNotFoundError, find_java

log = logging.getLogger(__name__)

STATE_FILE_NAME = "orderpipe-cassandra.json"

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


@dataclass
class ClusterState:
    """What a detached cluster leaves behind so another process can inspect and stop it."""

    base_dir: str
    settings: dict[str, Any]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = 0.0


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
    def start(self, *, timeout_per_node: float = DEFAULT_START_TIMEOUT_S) -> Self:
        try:
            java = find_java()
        except JavaNotFoundError as error:
            raise CassandraError(str(error)) from error
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

    def stop(self, *, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Stop every node (last started first) and, for a temporary base dir, remove it."""
        for node in reversed(self.nodes):
            node.stop(timeout=timeout)
        with _live_lock:
            _live_clusters.discard(self)
        if self._owns_base_dir and not self.keep_data:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        else:
            self.state_file.unlink(missing_ok=True)

    def stop_node(self, index: int, *, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        self.nodes[index - 1].stop(timeout=timeout)
        self.write_state()

    def start_node(self, index: int, *, timeout: float = DEFAULT_START_TIMEOUT_S) -> None:
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
