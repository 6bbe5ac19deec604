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

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
ORDERPIPE = Path(sys.executable).with_name("orderpipe")
# What the README and the banner call the command: the venv's, from the repository root.
PASTED_ORDERPIPE = ".venv/bin/orderpipe"


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
                str(start_timeout + 600),
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "COLUMNS": "300"},
            cwd=REPO,  # started from the repository root, as the README says
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


def readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.DOTALL)
    return next(block for block in blocks if containing in block)


def bare_environment() -> dict[str, str]:
    """A new terminal's: no endpoint, URL, key or credential (only where the state file is)."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "ORDERPIPE_STATE_DIR": os.environ["ORDERPIPE_STATE_DIR"],
        "COLUMNS": "200",
    }


def scratch_root(tmp_path: Path) -> Path:
    """A directory laid out like the repository root for pasted commands (its `.venv` is the
    repository's), so that they run as printed without writing files into the repository."""
    root = tmp_path / "pasted"
    root.mkdir()
    (root / ".venv").symlink_to(REPO / ".venv")
    return root


def paste(
    script: str, cwd: Path, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run `script` as if pasted into bash: a failing command does not stop the rest, and each failure
    is reported on stderr as a line `exit N: COMMAND`."""
    trap = """trap 'echo "exit $?: $BASH_COMMAND" >&2' ERR\n"""
    return subprocess.run(
        ["bash", "-c", trap + script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def failures(done: subprocess.CompletedProcess[str]) -> list[str]:
    return re.findall(r"^exit \d+: .*$", done.stderr, re.MULTILINE)


def _readme_and_banner_commands_work(text: str, tmp_path: Path) -> None:
    # ...and the README's commands work as printed once the printed export line is pasted
    export_line = next(
        line.strip() for line in text.splitlines() if line.strip().startswith("export ORDERPIPE_")
    )
    api_url = re.search(r"API:\s+(http://\S+)", text)
    assert api_url is not None
    readme_block_ = readme_block("bash", "TOKEN=$(")
    script = "\n".join([export_line, readme_block_.replace("http://127.0.0.1:8080", api_url.group(1))])
    shown = subprocess.run(["bash", "-ec", script], capture_output=True, text=True, check=True, timeout=60)
    # (curl prints each JSON answer with no newline after it)
    decoder, answers, position = json.JSONDecoder(), [], 0
    while position < len(shown.stdout.strip()):
        answer, position = decoder.raw_decode(shown.stdout.strip(), position)
        answers.append(answer)
    assert answers[0]["status"] == "accepted"
    assert answers[1]["error"]["code"] == "bad_request"  # ORDER_ID as printed: not a UUID
    root, bare_env = scratch_root(tmp_path), bare_environment()
    _readme_import_works(root, bare_env)
    _readme_python_example_works(root, bare_env, export_line, api_url.group(1))
    _readme_operating_block_works(root, bare_env)
    _banner_commands_work(text, root, bare_env)
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


def _readme_import_works(root: Path, bare_env: dict[str, str]) -> None:
    # When the README's import block is pasted in a new terminal (no URL, no credentials)
    block = readme_block("bash", "orderpipe submit orders.jsonl")
    expected = re.search(r"the (\d+) refused lines", block)
    assert expected is not None and "the exit status is 1 when some line was refused" in README.read_text()
    done = paste(block, root, bare_env)
    # Then `orderpipe submit` found the pipeline and exited 1, as the README says, and jq printed
    # the refused lines, each naming its field
    assert failures(done) == [f"exit 1: {PASTED_ORDERPIPE} submit orders.jsonl"], done.stderr[-3000:]
    assert "pipeline: the local pipeline of `orderpipe run`" in done.stderr
    refused = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(refused) == int(expected.group(1)), done.stdout
    assert {(r["status"], r["errors"][0]["field"]) for r in refused} == {("rejected", "items.0.quantity")}


def _readme_python_example_works(
    root: Path, bare_env: dict[str, str], export_line: str, api_url: str
) -> None:
    # When the README's Python example runs with the printed export line pasted (on this run's port)
    example = readme_block("python", "OrderpipeClient(")
    (root / "example.py").write_text(example.replace("http://127.0.0.1:8080", api_url))
    done = paste(f"{export_line}\n.venv/bin/python example.py", root, bare_env)
    # Then it submitted the order and printed it once readable
    assert failures(done) == [], done.stderr[-3000:]
    assert "cust-42" in done.stdout and "order_id" in done.stdout, done.stdout


def _readme_operating_block_works(root: Path, bare_env: dict[str, str]) -> None:
    # When the README's "Operating it" block is pasted in a new terminal
    block = readme_block("bash", "orderpipe dlq redrive")
    commands = [line for line in block.splitlines() if line.strip()]
    assert all(line.startswith(f"{PASTED_ORDERPIPE} ") for line in commands), block
    done = paste(block, root, bare_env, timeout=240)
    # Then every command found the pipeline by itself and succeeded, and the load run reported
    assert failures(done) == [], done.stderr[-3000:]
    assert done.stderr.count("pipeline: the local pipeline of `orderpipe run`") == len(commands), done.stderr
    report = json.loads((root / "load-report.json").read_text())
    assert report["orders_accepted"] > 0 and report["requests_ok"], report
    assert (root / "load-report.png").is_file()


def _banner_commands_work(text: str, root: Path, bare_env: dict[str, str]) -> None:
    # And the operator commands the banner prints, pasted as printed (NAME filled in) in a new terminal
    # at the repository root, find this pipeline through its state file and work
    assert "AWS_ENDPOINT_URL=" not in text
    lines = text.split("Operate it", 1)[1].split("Ctrl-C stops everything", 1)[0].splitlines()[1:]
    commands = [line.strip() for line in lines if line.strip()]
    assert all(command.startswith(f"{PASTED_ORDERPIPE} ") for command in commands), commands
    printed = {" ".join(command.split()[1:3]) for command in commands}
    assert {"queue status", "dlq inspect", "submit orders.jsonl", "producers add"} <= printed, commands
    for command in commands:
        done = paste(command.replace("NAME", "pasted-producer"), root, bare_env)
        assert "pipeline: the local pipeline of `orderpipe run`" in done.stderr, command + done.stderr
        if " submit " in command:  # orders.jsonl from the README's import: its refusals still count
            assert failures(done) == [f"exit 1: {PASTED_ORDERPIPE} submit orders.jsonl"], done.stderr[-3000:]
        else:
            assert failures(done) == [], command + done.stderr[-3000:]
        if " producers add " in command:
            assert "pasted-producer" in done.stdout, done.stdout


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
            line for line in lines if line.startswith(f"{PASTED_ORDERPIPE} fault add cassandra black-hole")
        )
        clear = next(line for line in lines if line == f"{PASTED_ORDERPIPE} fault clear")
        found = re.search(r"Toxiproxy \(http://127\.0\.0\.1:(\d+)\)", text)
        assert found is not None, text
        toxiproxy_ports.append(int(found.group(1)))

        def run_printed(line: str) -> str:  # as printed, from the repository root
            argv = shlex.split(line.split("#", 1)[0])
            return subprocess.run(argv, capture_output=True, check=True, text=True, env=env, cwd=REPO).stdout

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
