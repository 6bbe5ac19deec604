"""The README's run command itself: `orderpipe run` comes up, its printed curls work, the operator
tools and the load generator find it by themselves, and it stops cleanly."""

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
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orderpipe_devenv.processes import free_port

pytestmark = pytest.mark.cassandra

README = Path(__file__).resolve().parents[2] / "README.md"
ORDERPIPE = Path(sys.executable).with_name("orderpipe")


def run_env(cassandra_endpoint: Any) -> dict[str, str]:
    """Our environment, pointed at this session's Cassandra (as a user with a cluster would)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CASSANDRA_", "ORDERPIPE_TOX"))},
        "CASSANDRA_CONTACT_POINTS": ",".join(cassandra_endpoint.contact_points),
        "CASSANDRA_PORT": str(cassandra_endpoint.port),
        "CASSANDRA_LOCAL_DC": cassandra_endpoint.local_dc,
    }


def run_use_and_stop(
    env: dict[str, str],
    extra_args: list[str],
    tmp_path: Path,
    *,
    start_timeout: float = 240,  # start-up on a busy 2-core machine: Cassandra, emulators, 5 functions
    while_running: Callable[[str], None] | None = None,
) -> str:
    """Start `orderpipe run`, run the curls it prints (and `while_running` with what it printed so
    far), Ctrl-C it; returns what it printed."""
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
        assert order["producer"] == "local-producer"
        if while_running is not None:
            while_running(text)
        # the emulators it started (moto, and ElasticMQ for SQS when it is the default)
        emulator_ports = [int(port) for port in re.findall(r"(?:AWS|SQS):\s+http://127\.0\.0\.1:(\d+)", text)]
        assert emulator_ports, text
    finally:
        # When the user presses Ctrl-C
        process.send_signal(signal.SIGINT)
        exit_code = process.wait(timeout=90)
    # Then it stops cleanly, leaving no emulator behind (their ports no longer answer) and no state file
    assert exit_code == 0, output.read_text()[-3000:]
    assert "stopped." in output.read_text()
    assert not (Path(os.environ["ORDERPIPE_STATE_DIR"]) / "local-pipeline.json").exists()
    for port in emulator_ports:
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    return output.read_text()


def _readme_and_banner_commands_work(text: str, tmp_path: Path) -> None:
    # ...and the README's commands work as printed once the printed export line is pasted
    export_line = next(
        line.strip() for line in text.splitlines() if line.strip().startswith("export ORDERPIPE_")
    )
    api_url = re.search(r"API:\s+(http://\S+)", text)
    assert api_url is not None
    readme = README.read_text()
    readme_block = next(
        block.split("```", 1)[0] for block in readme.split("```bash\n")[1:] if "TOKEN=$(" in block
    )
    script = "\n".join([export_line, readme_block.replace("http://127.0.0.1:8080", api_url.group(1))])
    shown = subprocess.run(["bash", "-ec", script], capture_output=True, text=True, check=True, timeout=60)
    # (curl prints each JSON answer with no newline after it)
    decoder, answers, position = json.JSONDecoder(), [], 0
    while position < len(shown.stdout.strip()):
        answer, position = decoder.raw_decode(shown.stdout.strip(), position)
        answers.append(answer)
    assert answers[0]["status"] == "accepted"
    assert answers[1]["error"]["code"] == "bad_request"  # ORDER_ID as printed: not a UUID
    # And the commands the banner prints, run with no endpoint, URL or key in the environment,
    # find this pipeline through its state file and work
    bare_env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "ORDERPIPE_STATE_DIR": os.environ["ORDERPIPE_STATE_DIR"],
        "COLUMNS": "200",
    }
    for command in ("orderpipe queue status", "orderpipe dlq inspect"):
        assert f"  {command}" in text, f"the banner does not print `{command}`"
        done = subprocess.run(
            [str(ORDERPIPE), *command.split()[1:]],
            capture_output=True,
            text=True,
            env=bare_env,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "pipeline: the local pipeline of `orderpipe run`" in done.stderr
    status = subprocess.run(
        [str(ORDERPIPE), "queue", "status", "--json"],
        capture_output=True,
        text=True,
        env=bare_env,
        timeout=60,
    )
    measures = {m["name"]: m for m in json.loads(status.stdout)["measures"]}
    assert measures["DLQ visible"]["threshold"] == 0  # the stack's alarm thresholds, read from the alarms
    report = tmp_path / "load.json"
    load = subprocess.run(
        [str(ORDERPIPE), "load", "--count", "50", "--no-plot", "--report", str(report)],
        capture_output=True,
        text=True,
        env=bare_env,
        timeout=120,
    )
    assert load.returncode == 0, load.stdout + load.stderr
    assert json.loads(report.read_text())["orders_accepted"] == 50


def test_orderpipe_run_prints_commands_that_work_and_stops_on_ctrl_c(cassandra_endpoint, tmp_path):
    # Given `orderpipe run` pointed at this session's Cassandra (as a user with a cluster would)
    env = run_env(cassandra_endpoint)
    # When its curls, the README's commands and the operator commands it prints are used, Then they work
    run_use_and_stop(
        env,
        ["--keyspace", "orderpipe_run_cmd"],
        tmp_path,
        while_running=lambda text: _readme_and_banner_commands_work(text, tmp_path),
    )


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


def test_orderpipe_run_faults_prints_fault_commands_that_work(cassandra_endpoint, tmp_path):
    # Given `orderpipe run --faults` on this session's Cassandra
    env = run_env(cassandra_endpoint)
    toxiproxy_ports: list[int] = []

    def inject_by_hand(text: str) -> None:
        lines = [line.strip() for line in text.splitlines()]
        get_line = next(line for line in lines if "/orders/ORDER_ID" in line)
        black_hole = next(
            line for line in lines if line.startswith("orderpipe fault add cassandra black-hole")
        )
        clear = next(line for line in lines if line == "orderpipe fault clear")
        found = re.search(r"Toxiproxy \(http://127\.0\.0\.1:(\d+)\)", text)
        assert found is not None, text
        toxiproxy_ports.append(int(found.group(1)))

        def run_printed(line: str) -> str:
            argv = shlex.split(line.split("#", 1)[0])
            if argv[0] == "orderpipe":
                argv[0] = str(ORDERPIPE)
            return subprocess.run(argv, capture_output=True, check=True, text=True, env=env).stdout

        def get(order_id: str) -> str:
            return run_printed(get_line.replace("ORDER_ID", order_id).replace("curl -s", "curl -s -i", 1))

        never_read = str(uuid.uuid4())  # not cached: only Cassandra can say it is unknown
        # When Cassandra is black-holed with the printed command (it finds the run's Toxiproxy itself)
        run_printed(black_hole)
        started = time.monotonic()
        miss = get(never_read)
        seconds = time.monotonic() - started
        # Then a GET Cassandra must answer is a 503 with Retry-After within 3 s
        assert miss.startswith("HTTP/1.1 503"), miss
        assert "Retry-After: " in miss
        assert seconds < 3.5  # 3 s, plus starting curl
        # And once the faults are cleared, Cassandra answers again: the unknown order is a 404
        run_printed(clear)
        for _ in range(60):
            miss = get(never_read)
            if not miss.startswith("HTTP/1.1 503"):
                break
            time.sleep(0.5)
        assert miss.startswith("HTTP/1.1 404"), miss

    run_use_and_stop(
        env, ["--faults", "--keyspace", "orderpipe_run_faults"], tmp_path, while_running=inject_by_hand
    )
    # And Ctrl-C stops Toxiproxy with the rest
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", toxiproxy_ports[0]), timeout=2),
    ):
        pass
