"""Child processes of the local environment, handled one way: ports, Java, lifetime, stopping.

Every server the local environment starts (Cassandra JVMs, ElasticMQ, moto, Toxiproxy) is a child
that must never outlive us: it gets PR_SET_PDEATHSIG=SIGKILL (`die_with_parent`), and is stopped
with SIGTERM, then SIGKILL after a bound (`stop_process`, `stop_pid`). `ServerProcess` is the
common shape of a loopback server we start, wait for until it answers, and always stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

# One copy, in the operator tools (they install alone); the local environment depends on them.
from orderpipe_ops.pids import pid_alive

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class JavaNotFoundError(RuntimeError):
    pass


class ServerStartError(RuntimeError):
    """A child server exited or did not answer in time; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for servers that must not clash with others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when `host:port` can be bound right now (nobody listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes local ports of outgoing connections from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def stable_port(host: str = "127.0.0.1", *, count: int = 1, attempts: int = 200) -> int:
    """The first of `count` free ports in a row, outside the kernel's ephemeral range.

    For a server that is stopped and started again on the same port (a Cassandra node killed by a
    drill): a port from `free_port()` is an ephemeral one, which an outgoing connection may take
    while the server is down, and the restart then fails with "Address already in use".
    """
    low, high = _ephemeral_ports()
    ranges = [
        (r_low, r_high)
        for r_low, r_high in ((10_000, low - count), (high + 1, 65_535 - count))
        if r_high > r_low
    ]
    rng = random.Random()
    for _ in range(attempts):
        first = rng.randint(*rng.choice(ranges))
        if all(port_free(first + offset, host) for offset in range(count)):
            return first
    raise OSError(f"no {count} free port(s) in a row outside the ephemeral range after {attempts} tries")


def find_java() -> str:
    """`$JAVA_HOME/bin/java`, else `java` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise JavaNotFoundError("no `java` found (set JAVA_HOME or put Java 17 on PATH)")
    return java


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGKILL to the child when the process that started it dies.

    Linux ties this to the *thread* that forked: start long-lived children from a thread that
    lives as long as they should (the main thread, as pytest fixtures and the CLI do).
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float, name: str) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL: the child is gone when this returns."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) ignored SIGTERM for %.0f s: killing it", name, process.pid, timeout)
        process.kill()
        process.wait()


def stop_pid(pid: int, *, timeout: float, name: str) -> bool:
    """The same for a process we did not start (no Popen); False when it was not running."""
    if not pid_alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(pid, timeout):
        log.warning("%s (pid %d) ignored SIGTERM for %.0f s: killing it", name, pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_for_exit(pid, 10)
    return True


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None:
        return "(no log)"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Started(ABC):
    """`with thing:` starts it and always stops it, a half-done start included (stop must be safe then)."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ServerProcess(Started):
    """A server on loopback run as our child: `with Server() as server: server.endpoint_url`.

    Subclasses give the command and a readiness probe; this class owns the working directory (for
    config and the log), the start-up wait (failing with the log tail), and the stop.
    """

    name = "server"
    start_timeout_seconds = 60.0
    stop_timeout_seconds = 15.0

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path | None:
        return self.workdir / f"{self.name}.log" if self.workdir else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @abstractmethod
    def command(self) -> list[str]:
        """The argv to run (write any config into `self.workdir` first)."""

    @abstractmethod
    def answers(self) -> bool:
        """True once the server serves requests."""

    def environment(self) -> dict[str, str] | None:
        """The child's environment (None: ours)."""
        return None

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"orderpipe-{self.name}-"))
        command = self.command()
        assert self.log_file is not None
        with open(self.log_file, "wb") as output:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + self.start_timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise ServerStartError(f"{self.name} exited with {code} on start:\n{log_tail(self.log_file)}")
            if self.answers():
                log.debug("%s answers on %s (pid %d)", self.name, self.endpoint_url, self._process.pid)
                return
            time.sleep(0.1)
        tail = log_tail(self.log_file)
        self.stop()
        raise ServerStartError(
            f"{self.name} did not answer on {self.endpoint_url} within {self.start_timeout_seconds:.0f} s:\n{tail}"
        )

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, timeout=self.stop_timeout_seconds, name=self.name)
            self._process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
