"""The Cassandra launcher against a real node: start, CQL, stop without leftovers, restart with data, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Session

from orderpipe_devenv import cassandra as local_cassandra
from orderpipe_devenv import maven_jars
from orderpipe_devenv.processes import free_port
from orderpipe_ops.cli import main as cli_main
from tests.fixtures.cassandra import CassandraOutage, wait_until_queryable

ORDERPIPE_SCRIPT = Path(sys.executable).parent / "orderpipe"


def wait_gone(pid: int, timeout_seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False


# --- without a JVM: configuration and the jar cache ------------------------------------------------


def test_three_nodes_get_distinct_addresses_jmx_ports_and_balanced_tokens():
    # Given the settings of a three-node cluster
    settings = local_cassandra.ClusterSettings(nodes=3)
    # When the node specs are derived
    specs = settings.node_specs()
    # Then each node has its own loopback address and JMX port, every node is a seed, tokens are even
    assert [s.address for s in specs] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert len({s.jmx_port for s in specs}) == 3
    assert all(s.seeds == ("127.0.0.1:7000", "127.0.0.2:7000", "127.0.0.3:7000") for s in specs)
    tokens = [s.initial_token for s in specs]
    assert tokens[0] == -(2**63)
    assert tokens[1] - tokens[0] == tokens[2] - tokens[1] == 2**64 // 3
    assert all(s.heap_mb == 768 for s in specs)


def test_nodes_sync_their_commit_log_before_acknowledging_unless_told_periodic(tmp_path: Path):
    # Given the default settings, and settings asking for Cassandra's own periodic mode
    durable = local_cassandra.ClusterSettings(nodes=3).node_specs()
    periodic = local_cassandra.ClusterSettings(nodes=3, commitlog_sync="periodic").node_specs()
    # When each node's cassandra.yaml is written
    durable_yaml = [local_cassandra.cassandra_yaml(spec, tmp_path).splitlines() for spec in durable]
    periodic_yaml = [local_cassandra.cassandra_yaml(spec, tmp_path).splitlines() for spec in periodic]
    # Then by default every node acknowledges a write once it is on disk (a crash keeps it); asked,
    # every node syncs every 10 s instead, as Cassandra does by default
    assert all('commitlog_sync: "batch"' in lines for lines in durable_yaml)
    assert not any(line.startswith("commitlog_sync_period") for lines in durable_yaml for line in lines)
    assert all(
        'commitlog_sync: "periodic"' in lines and 'commitlog_sync_period: "10000ms"' in lines
        for lines in periodic_yaml
    )


def _fake_mvn(bin_dir: Path, *, succeed: bool) -> None:
    """A stand-in for Maven that copies one jar into -DoutputDirectory, then succeeds or dies."""
    script = textwrap.dedent(
        f"""\
        #!{sys.executable}
        import sys, pathlib
        out = next(a for a in sys.argv if a.startswith("-DoutputDirectory=")).split("=", 1)[1]
        pathlib.Path(out).mkdir(parents=True, exist_ok=True)
        pathlib.Path(out, "cassandra-all-{local_cassandra.CASSANDRA_VERSION}.jar").write_bytes(b"jar")
        print("Downloaded from central: https://repo/x/cassandra-all-{local_cassandra.CASSANDRA_VERSION}.jar (1 B at 1 B/s)")
        sys.exit({0 if succeed else 1})
        """
    )
    mvn = bin_dir / "mvn"
    mvn.write_text(script)
    mvn.chmod(0o755)


def test_an_interrupted_fetch_is_not_taken_as_complete_and_a_complete_one_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Given an empty cache and a Maven that fails after copying part of the jars
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("ORDERPIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _fake_mvn(bin_dir, succeed=False)
    # When the fetch runs
    with pytest.raises(local_cassandra.JarFetchError, match="mvn exited with 1"):
        local_cassandra.fetch_jars()
    # Then nothing is in the cache's lib dir and no temporary directory is left
    assert not local_cassandra.jars_ready()
    assert not local_cassandra.jar_dir().exists()
    assert [p.name for p in local_cassandra.jar_dir().parent.iterdir()] == [".fetch.lock"]

    # Given a Maven that succeeds
    _fake_mvn(bin_dir, succeed=True)
    progress: list[str] = []
    # When the fetch runs twice
    first = local_cassandra.fetch_jars(progress=progress.append)
    (bin_dir / "mvn").unlink()  # the second run must not need Maven at all
    second = local_cassandra.fetch_jars()
    # Then the first downloads (reporting progress) and the second only finds the complete cache
    assert first.downloaded and first.jar_count == 1 and progress
    assert not second.downloaded and second.lib_dir == first.lib_dir
    marker = json.loads((local_cassandra.jar_dir() / maven_jars.COMPLETE_MARKER).read_text())
    assert marker["jars"] == [f"cassandra-all-{local_cassandra.CASSANDRA_VERSION}.jar"]


def test_cli_help_lists_the_cassandra_commands(capsys: pytest.CaptureFixture[str]):
    # Given the orderpipe CLI
    # When asking for help on the cassandra group
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["cassandra", "--help"])
    # Then it exits 0 and names every subcommand
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for command in ("fetch", "start", "stop", "status"):
        assert command in help_text
    # ...and the installed console script answers too
    result = subprocess.run(
        [str(ORDERPIPE_SCRIPT), "cassandra", "start", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--foreground" in result.stdout and "--keep-data" in result.stdout


# --- the real node -----------------------------------------------------------------------------------

pytest_cassandra = pytest.mark.cassandra


@pytest_cassandra
def test_the_embedded_node_answers_cql_as_cassandra_5_in_datacenter1(
    embedded_cassandra: local_cassandra.CassandraCluster, cql_session: Session
):
    # Given the session's embedded node
    node = embedded_cassandra.nodes[0]
    # When asked for its version and data center
    row = cql_session.execute("SELECT release_version, data_center FROM system.local").one()
    # Then it is Cassandra 5.0.x in the data center the project expects, and its JVM is running
    assert row.release_version.startswith("5.0.")
    assert row.data_center == local_cassandra.LOCAL_DC == "datacenter1"
    assert node.is_running() and node.cql_answers()
    assert node.rss_bytes() is not None


@pytest_cassandra
def test_stop_leaves_no_jvm_and_a_restart_on_the_same_data_keeps_the_rows(
    embedded_cassandra: local_cassandra.CassandraCluster,
    cassandra_outage: CassandraOutage,
    cql_session: Session,
):
    # Given a row written to the embedded node
    keyspace = f"launcher_{uuid.uuid4().hex[:8]}"
    cql_session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    cql_session.execute(f"CREATE TABLE {keyspace}.kv (k text PRIMARY KEY, v text)")
    cql_session.execute(f"INSERT INTO {keyspace}.kv (k, v) VALUES ('answer', '42')")
    node = embedded_cassandra.nodes[0]
    old_pid = node.pid
    assert old_pid is not None
    # When the node is stopped
    cassandra_outage.stop()
    # Then its JVM is gone and CQL no longer answers
    assert wait_gone(old_pid), f"JVM {old_pid} still exists after stop"
    assert not node.cql_answers()
    # When it is started again on the same data directory
    cassandra_outage.start()
    wait_until_queryable(cql_session)
    # Then it is a new JVM and the row is still there
    assert node.pid not in (None, old_pid)
    row = cql_session.execute(f"SELECT v FROM {keyspace}.kv WHERE k = 'answer'").one()
    assert row is not None and row.v == "42"
    cql_session.execute(f"DROP KEYSPACE {keyspace}")


@pytest_cassandra
def test_a_sigkilled_node_comes_back_with_every_write_it_acknowledged(
    embedded_cassandra: local_cassandra.CassandraCluster,
    cassandra_outage: CassandraOutage,
    cql_session: Session,
):
    # Given rows written one after another, each acknowledged, up to the moment of a crash
    # (the writer deletes an order's message once its write is acknowledged: a write the node
    # forgets afterwards is a lost order)
    keyspace = f"crash_{uuid.uuid4().hex[:8]}"
    cql_session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    cql_session.execute(f"CREATE TABLE {keyspace}.kv (k int PRIMARY KEY, v text)")
    insert = cql_session.prepare(f"INSERT INTO {keyspace}.kv (k, v) VALUES (?, 'acknowledged')")
    acknowledged = 0
    writing_until = time.monotonic() + 3.0
    while time.monotonic() < writing_until:
        cql_session.execute(insert, (acknowledged,))
        acknowledged += 1
    # When the node is SIGKILLed right after the last acknowledgement, and started again
    cassandra_outage.crash()
    cassandra_outage.start()
    wait_until_queryable(cql_session)
    # Then every acknowledged row is there (with a periodic commit log the last 31-100 were not)
    stored = {row.k for row in cql_session.execute(f"SELECT k FROM {keyspace}.kv")}
    missing = sorted(set(range(acknowledged)) - stored)
    assert acknowledged > 100
    assert not missing, f"{len(missing)} of {acknowledged} acknowledged writes lost: {missing[:10]}"
    cql_session.execute(f"DROP KEYSPACE {keyspace}")


@pytest_cassandra
def test_the_jvm_dies_with_its_parent_even_on_sigkill(
    embedded_cassandra: local_cassandra.CassandraCluster, tmp_path: Path
):
    # Given a Python process that starts a node and prints its JVM's pid as soon as it exists
    child_code = textwrap.dedent(
        f"""\
        import threading, time
        from pathlib import Path
        from orderpipe_devenv import cassandra as local_cassandra
        from orderpipe_devenv.processes import find_java, free_port

        settings = local_cassandra.ClusterSettings(cql_port=free_port(), storage_port=free_port(), jmx_port=free_port())
        node = local_cassandra.CassandraNode(settings.node_specs()[0], Path({str(tmp_path)!r}), local_cassandra.jar_dir(), java=find_java())

        def report_pid() -> None:
            while node.pid is None:
                time.sleep(0.05)
            print(node.pid, flush=True)

        threading.Thread(target=report_pid, daemon=True).start()
        node.start(timeout=120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", child_code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        jvm_pid = int(parent.stdout.readline())
        assert Path(f"/proc/{jvm_pid}").exists()
        # When the parent is killed with SIGKILL (no atexit, no finally)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        # Then the kernel kills its JVM too
        assert wait_gone(jvm_pid), f"JVM {jvm_pid} outlived its killed parent"
    finally:
        parent.kill()
        parent.wait(10)


@pytest_cassandra
@pytest.mark.slow
def test_cli_start_leaves_a_detached_node_that_status_shows_and_stop_ends(
    embedded_cassandra: local_cassandra.CassandraCluster, tmp_path: Path
):
    # Given free ports and a base dir of our own (a hand-started node may use the defaults)
    base_dir = tmp_path / "cluster"
    ports = [str(free_port()) for _ in range(3)]
    command = [str(ORDERPIPE_SCRIPT), "cassandra"]
    common = ["--base-dir", str(base_dir)]
    try:
        # When `start` runs in the background mode and returns
        started = subprocess.run(
            [
                *command,
                "start",
                "--port",
                ports[0],
                "--storage-port",
                ports[1],
                "--jmx-port",
                ports[2],
                *common,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        # Then the node outlives the CLI process, and `status` sees it answering CQL
        state = local_cassandra.read_state(base_dir)
        assert state is not None
        pid = state.nodes[0]["pid"]
        assert Path(f"/proc/{pid}").exists()
        status = subprocess.run([*command, "status", *common], capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout
        assert str(pid) in status.stdout
        # When `stop` runs
        stopped = subprocess.run([*command, "stop", *common], capture_output=True, text=True, timeout=60)
        # Then the JVM is gone and `status` says nothing runs
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert wait_gone(pid)
        after = subprocess.run([*command, "status", *common], capture_output=True, text=True, timeout=60)
        assert after.returncode == 3
    finally:
        local_cassandra.stop_detached(base_dir, timeout=10)
