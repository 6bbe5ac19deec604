"""The state file of `orderpipe run`: where it is, who may read it, when it counts as live."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orderpipe_ops import local_pipeline
from orderpipe_ops.local_pipeline import LocalPipeline
from orderpipe_ops.pids import pid_alive, start_time


def _pipeline(pid: int, *, pid_started: int | None = None) -> LocalPipeline:
    return LocalPipeline(
        pid=pid,
        pid_started=pid_started,
        api_url="http://127.0.0.1:8080",
        region="us-east-1",
        access_key_id="local",
        secret_access_key="local",
        aws_endpoint_url="http://127.0.0.1:5000",
        sqs_endpoint_url="http://127.0.0.1:9324",
        queue_url="http://127.0.0.1:9324/000000000000/orderpipe-local-orders",
        dlq_url="http://127.0.0.1:9324/000000000000/orderpipe-local-orders-dlq",
        cassandra="127.0.0.1:9042 (embedded), keyspace orderpipe",
        resource_prefix="orderpipe-local",
        credentials={"x-api-key": "secret"},
    )


def _finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def test_the_file_of_a_running_process_is_read_back(tmp_path: Path):
    # Given a state file written for this (running) process with its start time
    me = _pipeline(os.getpid(), pid_started=start_time(os.getpid()))
    path = local_pipeline.write(me, tmp_path / "state.json")
    # When it is read, Then it is the pipeline that was written
    assert local_pipeline.read(path) == me


def test_a_file_whose_process_is_gone_is_ignored(tmp_path: Path):
    # Given a state file left by a run whose process has exited (killed, never removed its file)
    path = local_pipeline.write(_pipeline(_finished_pid()), tmp_path / "state.json")
    # When it is read, Then there is no running pipeline
    assert local_pipeline.read(path) is None


def test_a_file_whose_pid_now_names_another_process_is_ignored(tmp_path: Path):
    # Given a state file whose pid is running, but a process that started at another time
    # (the old run is gone and the kernel gave its pid to a new process)
    started = start_time(os.getpid())
    assert started is not None
    path = local_pipeline.write(_pipeline(os.getpid(), pid_started=started - 1), tmp_path / "state.json")
    # When it is read, Then it is not taken for a running pipeline
    assert local_pipeline.read(path) is None


def test_a_zombie_is_not_a_running_pipeline(tmp_path: Path):
    # Given a child that has exited but is not reaped yet (a zombie keeps its pid)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        path = local_pipeline.write(_pipeline(child.pid), tmp_path / "state.json")
        # When its state file is read, Then the pipeline counts as gone
        assert not pid_alive(child.pid)
        assert local_pipeline.read(path) is None
    finally:
        child.wait()


def test_stopping_removes_only_the_file_that_run_wrote(tmp_path: Path):
    # Given a state file that another run (another pid) has since replaced
    path = local_pipeline.write(_pipeline(os.getpid()), tmp_path / "state.json")
    # When an older run stops, Then the newer run's file stays
    local_pipeline.remove(os.getpid() + 1, path)
    assert json.loads(path.read_text())["pid"] == os.getpid()
    # When the run that wrote it stops, Then it is gone
    local_pipeline.remove(os.getpid(), path)
    assert not path.exists()


def test_the_file_is_readable_by_its_owner_only(tmp_path: Path):
    # Given a pipeline whose file holds the local API key, When it is written
    path = local_pipeline.write(_pipeline(os.getpid()), tmp_path / "dir" / "state.json")
    # Then only its owner may read or write it, and no temporary file is left beside it
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_the_default_place_is_under_the_users_local_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    # Given no ORDERPIPE_STATE_DIR, When the tools look for the file
    monkeypatch.delenv(local_pipeline.STATE_DIR_VARIABLE, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    # Then it is ~/.local/state/orderpipe/local-pipeline.json
    assert local_pipeline.state_file() == tmp_path / ".local" / "state" / "orderpipe" / "local-pipeline.json"
    # And ORDERPIPE_STATE_DIR moves it
    monkeypatch.setenv(local_pipeline.STATE_DIR_VARIABLE, str(tmp_path / "elsewhere"))
    assert local_pipeline.state_file() == tmp_path / "elsewhere" / "local-pipeline.json"


def test_a_file_written_before_start_times_were_recorded_is_judged_by_its_pid(tmp_path: Path):
    # Given a state file without the start time (written by an older orderpipe)
    data = dataclasses.asdict(_pipeline(os.getpid()))
    del data["pid_started"]
    path = tmp_path / "state.json"
    path.write_text(json.dumps(data))
    # When it is read while its process runs, Then it is used
    pipeline = local_pipeline.read(path)
    assert pipeline is not None and pipeline.pid == os.getpid()
