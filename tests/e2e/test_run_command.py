"""The README's run command itself: `orderpipe run` comes up, its printed curls work, it stops cleanly."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orderpipe_devenv.processes import free_port

pytestmark = pytest.mark.cassandra

ORDERPIPE = Path(sys.executable).with_name("orderpipe")


def run_use_and_stop(
    env: dict[str, str], extra_args: list[str], tmp_path: Path, *, start_timeout: float = 120
) -> str:
    """Start `orderpipe run`, run the curls it prints, Ctrl-C it; returns what it printed."""
    output = tmp_path / "run.log"
    with output.open("w") as log:
        process = subprocess.Popen(
            [
                str(ORDERPIPE),
                "run",
                "--port",
                str(free_port()),
                "--duration",
                str(start_timeout + 120),
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "COLUMNS": "300"},
        )
    try:
        # When it is up (it prints the curls)
        deadline = time.monotonic() + start_timeout
        while "Ctrl-C stops everything" not in output.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, output.read_text()
            time.sleep(0.5)
        text = output.read_text()
        post_line = next(
            line.strip() for line in text.splitlines() if line.strip().startswith("curl -s -X POST")
        )
        get_line = next(line.strip() for line in text.splitlines() if "/orders/ORDER_ID" in line)
        # Then the printed POST curl, run as printed, is accepted...
        accepted = json.loads(
            subprocess.run(shlex.split(post_line), capture_output=True, check=True, text=True).stdout
        )
        assert accepted["status"] == "accepted"
        # ...and the printed GET curl returns the order once the writer has stored it
        get_command = shlex.split(get_line.replace("ORDER_ID", accepted["order_id"]))
        order = None
        for _ in range(60):
            answer = subprocess.run(get_command, capture_output=True, check=True, text=True).stdout
            if '"order_id"' in answer:
                order = json.loads(answer)
                break
            time.sleep(0.5)
        assert order is not None, "the order never became readable"
        assert order["items"][0]["unit_price"] == "19.99"
        # the emulators it started (moto, and ElasticMQ for SQS when it is the default)
        emulator_ports = [int(port) for port in re.findall(r"(?:AWS|SQS):\s+http://127\.0\.0\.1:(\d+)", text)]
        assert emulator_ports, text
    finally:
        # When the user presses Ctrl-C
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=90)
    # Then it stops cleanly, leaving no emulator behind: their ports no longer answer
    assert exit_code == 0, output.read_text()[-3000:]
    assert "stopped." in output.read_text()
    for port in emulator_ports:
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    return output.read_text()


def test_orderpipe_run_prints_curls_that_work_and_stops_on_ctrl_c(cassandra_endpoint, tmp_path):
    # Given `orderpipe run` pointed at this session's Cassandra (as a user with a cluster would)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CASSANDRA_"))},
        "CASSANDRA_CONTACT_POINTS": ",".join(cassandra_endpoint.contact_points),
        "CASSANDRA_PORT": str(cassandra_endpoint.port),
        "CASSANDRA_LOCAL_DC": cassandra_endpoint.local_dc,
    }
    run_use_and_stop(env, ["--keyspace", "orderpipe_run_cmd"], tmp_path)


def test_orderpipe_run_with_cassandra_tls_runs_the_pipeline_over_tls_and_password_auth(tmp_path):
    # Given `orderpipe run --cassandra-tls` (it starts its own node: TLS only, PasswordAuthenticator)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CASSANDRA_"))}
    # When its curls are used, then they work (the node refuses anything but TLS and a password) ...
    # (More time to come up: it makes certificates and starts its own node, then each function's
    # environments connect over TLS.)
    text = run_use_and_stop(
        env, ["--cassandra-tls", "--keyspace", "orderpipe_run_tls"], tmp_path, start_timeout=300
    )
    # ... and it says so: the CA, the host-name check and the application role
    assert re.search(r"TLS \(CA \S+ca\.pem, ip_san\), as role orderpipe", text), text
