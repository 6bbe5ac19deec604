"""Detached clusters (`orderpipe cassandra start`): inspect and stop them from another process.

A detached cluster leaves a state file (`cluster.STATE_FILE_NAME`) in its base directory naming
each node's pid and directory; the pid is trusted only if it is still a CassandraDaemon
configured under that directory (pid reuse).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderpipe_devenv.cache import cache_root
from orderpipe_devenv.cassandra.cluster import STATE_FILE_NAME, ClusterState
from orderpipe_devenv.cassandra.node import DEFAULT_STOP_TIMEOUT_S, cql_answers, is_our_jvm, rss_bytes
from orderpipe_devenv.processes import pid_alive, stop_pid


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
    return pid is not None and pid_alive(pid) and is_our_jvm(pid, Path(node["node_dir"]))


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
                cql_answers=running
                and cql_answers(node["address"], node["cql_port"], tls=bool(node.get("tls_keystore"))),
                rss_bytes=rss_bytes(node["pid"]) if running else None,
                log=node["log"],
            )
        )
    return statuses


def stop_detached(base_dir: Path, *, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> list[int]:
    """Stop the nodes named in base_dir's state file (last first); returns the pids that were stopped."""
    state = read_state(base_dir)
    if state is None:
        return []
    stopped = []
    for node in reversed(state.nodes):
        if not _node_running(node):
            continue
        pid = int(node["pid"])
        stop_pid(pid, timeout=timeout, name=f"cassandra node {node['index']}")
        stopped.append(pid)
    (base_dir / STATE_FILE_NAME).unlink(missing_ok=True)
    return stopped


def default_base_dir() -> Path:
    """Where the CLI keeps a hand-started cluster (its data, logs and state file)."""
    return cache_root() / "cassandra" / "cluster"
