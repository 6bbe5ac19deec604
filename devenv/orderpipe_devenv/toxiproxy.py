"""Toxiproxy (Shopify's fault-injection TCP proxy) on loopback: the binary, the server, a client.

Faults on the network between the functions and a dependency are what this is for: put a proxy in
front of Cassandra, SQS or DynamoDB, point the function at the proxy, and add toxics through the
HTTP API while it runs.

    with ToxiproxyServer() as toxiproxy:
        proxy = toxiproxy.client.create_proxy("cassandra", upstream="127.0.0.1:9042")
        # ... point the client at proxy.host:proxy.port ...
        with proxy.toxic(Toxic.latency(500, jitter_ms=50)):
            ...  # every answer arrives 450-550 ms late
        with proxy.toxic(Toxic.timeout(stream="upstream")):
            ...  # connections are accepted, nothing arrives: a black hole

The binary is built once with `go install` (about 30-60 s) into the cache (`cache_root()/toxiproxy/
<version>/toxiproxy-server`), atomically and under a lock like the Maven jars; `make setup` does it
(`orderpipe toxiproxy fetch`). The toxics (stream `upstream` = client -> server, `downstream` =
server -> client; each applies to a `toxicity` share of connections):

| toxic        | attribute(s)            | effect                                                          |
|--------------|-------------------------|-----------------------------------------------------------------|
| `latency`    | latency, jitter (ms)    | delays every chunk of data by latency +- jitter                 |
| `timeout`    | timeout (ms)            | drops all data; closes the connection after timeout (0: never)  |
| `reset_peer` | timeout (ms)            | resets the connection (TCP RST) after timeout                   |
| `bandwidth`  | rate (KB/s)             | limits the throughput                                           |
| `limit_data` | bytes                   | closes the connection after that many bytes                     |
| `slow_close` | delay (ms)              | delays the close of the connection                              |
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from orderpipe_devenv.cache import cache_root
from orderpipe_devenv.processes import ServerProcess, ServerStartError

log = logging.getLogger(__name__)

TOXIPROXY_VERSION = "2.5.0"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
BINARY_NAME = "toxiproxy-server"
_GO_FALLBACK = Path("/usr/local/go/bin/go")  # the official tarball's place, often not on PATH

Stream = Literal["upstream", "downstream"]


class ToxiproxyUnavailableError(RuntimeError):
    """The toxiproxy binary cannot be had (no Go to build it, or the build failed)."""


class ToxiproxyError(RuntimeError):
    """The Toxiproxy API refused a request; `status` is its HTTP status (404 unknown, 409 exists)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- the binary -------------------------------------------------------------------------------------


def binary_path(version: str = TOXIPROXY_VERSION) -> Path:
    return cache_root() / "toxiproxy" / version / BINARY_NAME


def binary_ready(version: str = TOXIPROXY_VERSION) -> bool:
    """True when a previous build completed (the binary is renamed into place only when whole)."""
    path = binary_path(version)
    return path.is_file() and os.access(path, os.X_OK)


@dataclass(frozen=True)
class BuildResult:
    path: Path
    seconds: float
    built: bool  # False when the cache already had it


def find_go() -> str | None:
    go = shutil.which("go")
    if go is None and _GO_FALLBACK.is_file():
        go = str(_GO_FALLBACK)
    return go


def fetch_binary(version: str = TOXIPROXY_VERSION) -> BuildResult:
    """Make sure the toxiproxy server binary is in the cache; build it with `go install` if not.

    Atomic (built into a temporary sibling directory, renamed into place when whole) and locked
    (two test sessions build once).
    """
    started = time.monotonic()
    target = binary_path(version)
    if binary_ready(version):
        return BuildResult(target, time.monotonic() - started, built=False)
    go = find_go()
    if go is None:
        raise ToxiproxyUnavailableError(
            f"Go (`go`) is not on PATH: it is needed once to build toxiproxy-server {version} "
            "(install Go from https://go.dev/dl/ or your package manager)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent.parent / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary_ready(version):  # another process built it while we waited for the lock
            return BuildResult(target, time.monotonic() - started, built=False)
        staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
        try:
            _go_install(go, version, staging)
            built = staging / "server"
            if not built.is_file():
                raise ToxiproxyUnavailableError(f"go install finished but left no binary in {staging}")
            os.replace(built, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    log.info("built toxiproxy-server %s in %.0f s into %s", version, seconds, target)
    return BuildResult(target, seconds, built=True)


def _go_install(go: str, version: str, gobin: Path) -> None:
    env = {
        **os.environ,
        "GOBIN": str(gobin),
        "CGO_ENABLED": "0",  # a static binary, independent of the machine's C library
        # Module cache files writable, so the cache can be deleted like any other directory.
        "GOFLAGS": (os.environ.get("GOFLAGS", "") + " -modcacherw").strip(),
    }
    command = [
        go,
        "install",
        # Without this the binary reports version "git" (`go install` sets no version).
        f"-ldflags=-X {TOXIPROXY_MODULE}.Version={version}",
        f"{TOXIPROXY_MODULE}/cmd/server@v{version}",
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip().splitlines()
        raise ToxiproxyUnavailableError(
            f"`go install {TOXIPROXY_MODULE}/cmd/server@v{version}` exited with {completed.returncode}:\n"
            + "\n".join(output[-25:])
        )


# --- toxics and proxies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Toxic:
    """One toxic: build it with the class methods (`Toxic.latency(50)`), add it to a `Proxy`."""

    type: str
    attributes: dict[str, int] = field(default_factory=dict)
    stream: Stream = "downstream"
    toxicity: float = 1.0
    name: str = ""  # default: "<type>_<stream>", as Toxiproxy names it

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"{self.type}_{self.stream}")

    @classmethod
    def latency(cls, ms: int, *, jitter_ms: int = 0, stream: Stream = "downstream", **kw: Any) -> Toxic:
        """Every chunk of data is delayed by `ms` +- `jitter_ms`."""
        return cls("latency", {"latency": ms, "jitter": jitter_ms}, stream, **kw)

    @classmethod
    def timeout(cls, ms: int = 0, *, stream: Stream = "downstream", **kw: Any) -> Toxic:
        """Data is dropped; the connection is closed after `ms` (0: kept open, a black hole)."""
        return cls("timeout", {"timeout": ms}, stream, **kw)

    @classmethod
    def reset_peer(cls, ms: int = 0, *, stream: Stream = "downstream", **kw: Any) -> Toxic:
        """The connection is reset (TCP RST) after `ms`."""
        return cls("reset_peer", {"timeout": ms}, stream, **kw)

    @classmethod
    def bandwidth(cls, kb_per_second: int, *, stream: Stream = "downstream", **kw: Any) -> Toxic:
        return cls("bandwidth", {"rate": kb_per_second}, stream, **kw)

    @classmethod
    def limit_data(cls, size_bytes: int, *, stream: Stream = "downstream", **kw: Any) -> Toxic:
        """The connection is closed once `size_bytes` have passed."""
        return cls("limit_data", {"bytes": size_bytes}, stream, **kw)

    @classmethod
    def slow_close(cls, ms: int, *, stream: Stream = "downstream", **kw: Any) -> Toxic:
        return cls("slow_close", {"delay": ms}, stream, **kw)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Toxic:
        return cls(
            type=data["type"],
            attributes=dict(data.get("attributes") or {}),
            stream=data.get("stream", "downstream"),
            toxicity=float(data.get("toxicity", 1.0)),
            name=data.get("name", ""),
        )


@dataclass
class Proxy:
    """A proxy on the server: clients connect to `listen` (`host`:`port`), it forwards to `upstream`."""

    client: ToxiproxyClient = field(repr=False)
    name: str
    listen: str
    upstream: str
    enabled: bool = True

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def add(self, toxic: Toxic) -> Toxic:
        return Toxic.from_json(self.client.request("POST", f"/proxies/{self.name}/toxics", toxic.as_json()))

    def update(self, toxic_name: str, **attributes: int) -> Toxic:
        """Change a toxic's attributes in place (e.g. `update("latency_downstream", latency=500)`)."""
        path = f"/proxies/{self.name}/toxics/{toxic_name}"
        return Toxic.from_json(self.client.request("POST", path, {"attributes": attributes}))

    def remove(self, toxic_name: str, *, missing_ok: bool = False) -> None:
        try:
            self.client.request("DELETE", f"/proxies/{self.name}/toxics/{toxic_name}")
        except ToxiproxyError as error:
            if not (missing_ok and error.status == 404):
                raise

    def toxics(self) -> list[Toxic]:
        return [Toxic.from_json(t) for t in self.client.request("GET", f"/proxies/{self.name}/toxics")]

    @contextlib.contextmanager
    def toxic(self, toxic: Toxic) -> Iterator[Toxic]:
        """The toxic for the duration of the `with` block; removed afterwards (also on errors)."""
        added = self.add(toxic)
        try:
            yield added
        finally:
            self.remove(added.name, missing_ok=True)

    def disable(self) -> None:
        """Close every connection and stop listening (connections are refused: the server is "down")."""
        self._set_enabled(False)

    def enable(self) -> None:
        self._set_enabled(True)

    def _set_enabled(self, enabled: bool) -> None:
        self.client.request("POST", f"/proxies/{self.name}", {"enabled": enabled})
        self.enabled = enabled

    def delete(self) -> None:
        self.client.delete_proxy(self.name)


class ToxiproxyClient:
    """The HTTP API of a Toxiproxy server (https://github.com/Shopify/toxiproxy#http-api)."""

    def __init__(self, api_url: str, *, timeout_seconds: float = 5.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout_seconds)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ToxiproxyError(
                f"{method} {path}: {response.status_code} {message}", status=response.status_code
            )
        return response.json() if response.content else None

    def version(self) -> str:
        return self._http.get("/version").text.strip()

    def create_proxy(self, name: str, *, upstream: str, listen: str = "127.0.0.1:0") -> Proxy:
        """A new proxy to `upstream` ("host:port"); with port 0 in `listen` it picks a free port.

        The picked port is then pinned, so a proxy disabled and enabled again listens where it did.
        """
        created = self.request("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream})
        proxy = self._proxy(created)
        if listen.endswith(":0"):
            self.request("POST", f"/proxies/{name}", {"listen": proxy.listen})
        return proxy

    def proxy(self, name: str) -> Proxy:
        return self._proxy(self.request("GET", f"/proxies/{name}"))

    def proxies(self) -> dict[str, Proxy]:
        return {name: self._proxy(data) for name, data in self.request("GET", "/proxies").items()}

    def delete_proxy(self, name: str) -> None:
        self.request("DELETE", f"/proxies/{name}")

    def reset(self) -> None:
        """Every proxy enabled again and every toxic removed."""
        self.request("POST", "/reset")

    def close(self) -> None:
        self._http.close()

    def _proxy(self, data: dict[str, Any]) -> Proxy:
        return Proxy(
            client=self,
            name=data["name"],
            listen=data["listen"],
            upstream=data["upstream"],
            enabled=bool(data.get("enabled", True)),
        )


# --- the server -------------------------------------------------------------------------------------


class ToxiproxyServer(ServerProcess):
    """`with ToxiproxyServer() as toxiproxy: toxiproxy.client.create_proxy(...)` on a free API port."""

    name = "toxiproxy"
    start_timeout_seconds = 30.0
    stop_timeout_seconds = 5.0

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        fetch: Callable[[], BuildResult] = fetch_binary,
    ) -> None:
        super().__init__(host=host, port=port)
        self._fetch = fetch
        self._client: ToxiproxyClient | None = None

    @property
    def client(self) -> ToxiproxyClient:
        if self._client is None:
            self._client = ToxiproxyClient(self.endpoint_url)
        return self._client

    def start(self) -> None:
        try:
            super().start()
        except ServerStartError as error:
            raise ToxiproxyUnavailableError(str(error)) from error

    def command(self) -> list[str]:
        return [str(self._fetch().path), "-host", self.host, "-port", str(self.port)]

    def environment(self) -> dict[str, str]:
        # Without this every API call is a debug line; connections and toxics are still logged.
        return {**os.environ, "LOG_LEVEL": "info"}

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint_url}/version", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        super().stop()
