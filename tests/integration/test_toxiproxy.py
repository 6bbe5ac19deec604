"""The Toxiproxy client against the real server: a loopback echo server behind a proxy, each toxic
observed from the client's side of the connection (delays, silence, resets, closes)."""

from __future__ import annotations

import os
import socket
import socketserver
import statistics
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderpipe_devenv import toxiproxy as toxiproxy_module
from orderpipe_devenv.toxiproxy import Proxy, Toxic, ToxiproxyClient, ToxiproxyError
from orderpipe_ops.cli import main as cli_main


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_address() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def echo_proxy(toxiproxy_client: ToxiproxyClient, echo_address: str) -> Proxy:
    return toxiproxy_client.create_proxy(f"echo-{os.urandom(3).hex()}", upstream=echo_address)


def connect(proxy: Proxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=timeout)


def round_trip(proxy: Proxy, payload: bytes = b"ping") -> bytes:
    with connect(proxy) as connection:
        connection.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def median_round_trip_seconds(proxy: Proxy, count: int = 5) -> float:
    with connect(proxy) as connection:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            connection.sendall(b"x")
            assert connection.recv(16) == b"x"
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def send_and_read_until_closed(proxy: Proxy, payload: bytes) -> bytes:
    with connect(proxy) as connection:
        connection.sendall(payload)
        return read_until_closed(connection)


def test_a_proxy_forwards_to_its_upstream_from_a_port_of_its_own(echo_proxy, echo_address):
    # Given a proxy created with no listen port
    # Then it listens on a loopback port of its own and forwards to the echo server
    assert echo_proxy.host == "127.0.0.1"
    assert echo_proxy.listen != echo_address
    assert round_trip(echo_proxy, b"hello") == b"hello"


def test_latency_toxic_delays_answers_until_it_is_removed(echo_proxy):
    # Given a latency toxic of 200 ms on the answers
    with echo_proxy.toxic(Toxic.latency(200)):
        # When round trips are measured through the proxy
        delayed = median_round_trip_seconds(echo_proxy)
    # Then each took at least 200 ms; once the toxic is gone they are fast again
    assert delayed >= 0.2
    assert median_round_trip_seconds(echo_proxy) < 0.2
    assert echo_proxy.toxics() == []


def test_a_toxic_is_updated_in_place(echo_proxy):
    # Given a latency toxic of 0 ms
    echo_proxy.add(Toxic.latency(0))
    # When it is updated to 300 ms
    updated = echo_proxy.update("latency_downstream", latency=300)
    # Then the server reports the new value and answers take at least 300 ms
    assert updated.attributes["latency"] == 300
    assert median_round_trip_seconds(echo_proxy, count=3) >= 0.3


def test_timeout_toxic_accepts_connections_and_answers_nothing(echo_proxy):
    # Given a black hole on the way in (timeout 0: data dropped, the connection kept open)
    with echo_proxy.toxic(Toxic.timeout(stream="upstream")), connect(echo_proxy, timeout=1.0) as connection:
        # When a client connects and sends
        connection.sendall(b"anyone?")
        # Then the connection was accepted, but no answer comes
        with pytest.raises(TimeoutError):
            connection.recv(16)
    # And once the toxic is removed, a new connection is answered
    assert round_trip(echo_proxy) == b"ping"


def test_timeout_toxic_with_a_timeout_closes_the_connection(echo_proxy):
    # Given a timeout toxic that closes connections after 300 ms
    with echo_proxy.toxic(Toxic.timeout(300)), connect(echo_proxy) as connection:
        started = time.monotonic()
        connection.sendall(b"anyone?")
        # Then nothing is answered and the connection is closed after about 300 ms
        assert read_until_closed(connection) == b""
        assert 0.25 <= time.monotonic() - started < 4


def test_reset_peer_toxic_resets_the_connection(echo_proxy):
    # Given a reset_peer toxic
    # When a client sends and reads
    # Then it sees "connection reset by peer"
    with echo_proxy.toxic(Toxic.reset_peer()), pytest.raises(ConnectionResetError):
        send_and_read_until_closed(echo_proxy, b"x")


def test_limit_data_toxic_closes_the_connection_after_that_many_bytes(echo_proxy):
    # Given answers limited to 10 bytes per connection
    with echo_proxy.toxic(Toxic.limit_data(10)):
        # When 100 bytes are echoed
        # Then 10 bytes arrive and the connection is closed
        assert send_and_read_until_closed(echo_proxy, b"y" * 100) == b"y" * 10


def test_bandwidth_toxic_limits_throughput(echo_proxy):
    # Given answers limited to 50 KB/s
    with echo_proxy.toxic(Toxic.bandwidth(50)):
        started = time.monotonic()
        # When 100 KB are echoed
        assert round_trip(echo_proxy, b"z" * 100_000) == b"z" * 100_000
        # Then it takes about two seconds
        assert time.monotonic() - started >= 1.5


def test_a_disabled_proxy_refuses_connections_then_listens_on_the_same_port(echo_proxy):
    # Given a proxy that answers
    port = echo_proxy.port
    # When it is disabled
    echo_proxy.disable()
    # Then connections are refused
    with pytest.raises(ConnectionRefusedError):
        connect(echo_proxy).close()
    # And enabled again, it answers on the same port
    echo_proxy.enable()
    assert echo_proxy.port == port
    assert round_trip(echo_proxy) == b"ping"


def test_reset_removes_every_toxic_and_enables_every_proxy(toxiproxy_client, echo_proxy):
    # Given a proxy with two toxics, disabled
    echo_proxy.add(Toxic.latency(1000))
    echo_proxy.add(Toxic.timeout(stream="upstream"))
    echo_proxy.disable()
    # When the server is reset
    toxiproxy_client.reset()
    # Then the proxy has no toxics, is enabled and answers at once
    proxy = toxiproxy_client.proxy(echo_proxy.name)
    assert proxy.toxics() == []
    assert proxy.enabled
    assert round_trip(proxy) == b"ping"


def test_api_errors_carry_their_status(toxiproxy_client, echo_proxy):
    # Given a proxy with a latency toxic
    echo_proxy.add(Toxic.latency(10))
    # Then the same toxic again is a conflict, an unknown proxy is not found
    with pytest.raises(ToxiproxyError) as duplicate:
        echo_proxy.add(Toxic.latency(20))
    assert duplicate.value.status == 409
    with pytest.raises(ToxiproxyError) as unknown:
        toxiproxy_client.proxy("no-such-proxy")
    assert unknown.value.status == 404
    # And removing a toxic that is gone is allowed only when asked for
    echo_proxy.remove("latency_downstream")
    echo_proxy.remove("latency_downstream", missing_ok=True)
    with pytest.raises(ToxiproxyError):
        echo_proxy.remove("latency_downstream")


def test_the_server_reports_the_pinned_version(toxiproxy_client):
    assert toxiproxy_client.version() == toxiproxy_module.TOXIPROXY_VERSION


# --- the binary --------------------------------------------------------------------------------------


def _fake_go(bin_dir: Path, *, succeed: bool) -> None:
    """A stand-in for `go install` that writes a `server` binary into $GOBIN, or fails."""
    script = textwrap.dedent(
        f"""\
        #!{sys.executable}
        import os, pathlib, sys
        if not {succeed!r}:
            print("go: module lookup disabled", file=sys.stderr)
            sys.exit(1)
        target = pathlib.Path(os.environ["GOBIN"]) / "server"
        target.write_text("#!/bin/sh\\necho fake toxiproxy\\n")
        target.chmod(0o755)
        """
    )
    go = bin_dir / "go"
    go.write_text(script)
    go.chmod(0o755)


def test_fetch_builds_once_into_the_cache_and_leaves_nothing_when_the_build_fails(tmp_path, monkeypatch):
    # Given an empty cache and a `go` that fails
    monkeypatch.setenv("ORDERPIPE_CACHE_DIR", str(tmp_path / "cache"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _fake_go(bin_dir, succeed=False)
    # When the binary is fetched, Then the error says what go said, and no binary is left behind
    with pytest.raises(toxiproxy_module.ToxiproxyUnavailableError, match="module lookup disabled"):
        toxiproxy_module.fetch_binary()
    assert not toxiproxy_module.binary_ready()
    assert list(toxiproxy_module.binary_path().parent.iterdir()) == []
    # Given a `go` that works, When fetched twice, Then it is built once and then found in the cache
    _fake_go(bin_dir, succeed=True)
    first, second = toxiproxy_module.fetch_binary(), toxiproxy_module.fetch_binary()
    assert first.built and not second.built
    assert first.path == second.path == tmp_path / "cache" / "toxiproxy" / "2.5.0" / "toxiproxy-server"


def test_fetch_command_is_silent_when_the_binary_is_there(toxiproxy, capsys):
    # Given the session's server runs from the cached binary
    # When `orderpipe toxiproxy fetch` runs
    code = cli_main(["toxiproxy", "fetch"])
    # Then it succeeds and prints nothing
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""
