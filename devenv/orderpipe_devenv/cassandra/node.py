"""One CassandraDaemon JVM: its directory, start until CQL answers, stop, kill, probes."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from orderpipe_devenv import processes
from orderpipe_devenv.cassandra.config import LOGBACK_XML, NodeSpec, cassandra_yaml, java_command
from orderpipe_devenv.cassandra.errors import NodeStartError
from orderpipe_devenv.processes import (
    log_tail,
    pid_alive,
    stop_pid,
    stop_process,
    wait_for_exit,
)

log = logging.getLogger(__name__)

# Printed once native transport listens; the driver can connect from then on.
_CQL_READY_LOG = "Starting listening for CQL clients"
DEFAULT_START_TIMEOUT_S = 120.0
DEFAULT_STOP_TIMEOUT_S = 30.0


def is_our_jvm(pid: int, node_dir: Path) -> bool:
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


def cql_answers(address: str, port: int, timeout: float = 2.0, *, tls: bool = False) -> bool:
    """True when a CQL server answers an OPTIONS request (a real protocol exchange, not just a port).

    tls: the node accepts TLS only (client_encryption_options); the probe then speaks TLS without
    checking the certificate (it asks "is CQL up?", not "is this the right server?").
    """
    # Protocol v4 frame: version, flags, stream id (2 bytes), opcode OPTIONS (0x05), body length 0.
    request = bytes([0x04, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00])
    try:
        with contextlib.ExitStack() as stack:
            connection = stack.enter_context(socket.create_connection((address, port), timeout=timeout))
            if tls:
                probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                probe.check_hostname = False
                probe.verify_mode = ssl.CERT_NONE
                connection = stack.enter_context(probe.wrap_socket(connection))
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
        (self.node_dir / "conf" / "logback.xml").write_text(LOGBACK_XML.format(log_file=self.log_file))

    def is_running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self.pid is not None and pid_alive(self.pid) and is_our_jvm(self.pid, self.node_dir)

    def cql_answers(self) -> bool:
        return cql_answers(self.address, self.spec.cql_port, tls=self.spec.tls_keystore is not None)

    def rss_bytes(self) -> int | None:
        return rss_bytes(self.pid) if self.pid is not None and self.is_running() else None

    def start(self, *, timeout: float = DEFAULT_START_TIMEOUT_S, die_with_parent: bool = True) -> None:
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
                preexec_fn=processes.die_with_parent if die_with_parent else None,
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
                    f"{self.log_file}:\n{log_tail(self.log_file)}\n{self.console_file}:\n"
                    f"{log_tail(self.console_file, 15)}"
                )
            if self._log_says_ready(log_offset) and self.cql_answers():
                return
            time.sleep(0.25)
        raise NodeStartError(
            f"cassandra node {self.spec.index} did not answer CQL on {self.address}:{self.spec.cql_port} "
            f"within {timeout:.0f} s.\n{self.log_file}:\n{log_tail(self.log_file)}"
        )

    def _log_says_ready(self, offset: int) -> bool:
        try:
            with open(self.log_file, "rb") as system_log:
                system_log.seek(offset)
                return _CQL_READY_LOG.encode() in system_log.read()
        except OSError:
            return False

    def stop(self, *, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """SIGTERM (Cassandra drains: memtables flushed), then SIGKILL after `timeout` seconds."""
        pid = self.pid
        if pid is None:
            return
        if not self.is_running():
            self._forget()
            return
        started = time.monotonic()
        name = f"cassandra node {self.spec.index}"
        if self._process is not None:
            stop_process(self._process, timeout=timeout, name=name)
        else:
            stop_pid(pid, timeout=timeout, name=name)
        log.info("%s stopped (pid %d) in %.1f s", name, pid, time.monotonic() - started)
        self._forget()

    def kill(self) -> None:
        """SIGKILL at once: a crash, not a shutdown (nothing flushed beyond the commit log)."""
        if self.pid is not None and self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            if self._process is not None:
                self._process.wait(10)
            else:
                wait_for_exit(self.pid, 10)
        self._forget()

    def _forget(self) -> None:
        self._process = None
        self.pid = None

    def detach(self) -> None:
        """Stop tracking the child; it keeps running (its pid stays known for the state file)."""
        self._process = None
