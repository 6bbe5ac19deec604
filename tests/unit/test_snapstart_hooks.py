"""SnapStart runtime hooks (orderpipe_common.per_process), called in-process as the runtime would.

Two restored environments are simulated the way a snapshot makes them: one process initializes,
runs the before-snapshot hook, then is copied (fork) twice; each copy runs the after-restore hook.
"""

from __future__ import annotations

import json
import os
import random
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from orderpipe_common import per_process
from orderpipe_common.identity import Caller
from orderpipe_ingest.logic import accept_order
from orderpipe_ingest.publisher import FailedEntry
from orderpipe_testkit.sample_orders import order_payload


class RecordingPublisher:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, body: str, *, group: str | None = None) -> None:
        self.bodies.append(body)

    def send_batch(self, entries: Mapping[str, str], *, group: str | None = None) -> Sequence[FailedEntry]:
        self.bodies.extend(entries.values())
        return []


def mint() -> dict[str, Any]:
    """What a restored ingest hands out first: an order id, and the jitter its retries would use."""
    caller = Caller(producer="acme", read_all=False, request_id="req-1", source_ip="127.0.0.1")
    accepted = accept_order(order_payload(1), RecordingPublisher(), caller=caller)
    return {"order_id": str(accepted.order_id), "jitter": random.random()}


def in_restored_copies(restore: Callable[[], None], copies: int = 2) -> list[dict[str, Any]]:
    """Fork `copies` children from this (snapshotted) state; each runs `restore`, then mints.

    A snapshot restores memory as it was, random's state included; fork would re-seed random in the
    child by itself (os.register_at_fork), so each child first puts the snapshot's state back.
    """
    snapshot_state = random.getstate()
    results = []
    for _ in range(copies):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the restored copy
            try:
                os.close(read_end)
                random.setstate(snapshot_state)
                restore()
                os.write(write_end, json.dumps(mint()).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as reader:
            results.append(json.loads(reader.read()))
        os.waitpid(pid, 0)
    return results


@pytest.fixture
def snapshot_taken() -> Iterator[None]:
    # Given an initialized environment whose pseudo-random state is what the snapshot holds
    random.seed(20241118)
    per_process.before_snapshot()
    yield
    random.seed()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to copy a process")
def test_two_restored_environments_mint_different_ids_and_draw_different_jitter(snapshot_taken):
    # When two copies are restored from the same snapshot, each running the after-restore hook
    first, second = in_restored_copies(per_process.after_restore)
    # Then their order ids and their random draws differ
    assert first["order_id"] != second["order_id"]
    assert first["jitter"] != second["jitter"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to copy a process")
def test_without_the_restore_hook_copies_would_share_their_random_draws(snapshot_taken):
    # When two copies are restored without the hook (what the hook is for)
    first, second = in_restored_copies(lambda: None)
    # Then they draw the same "random" numbers (order ids differ: uuid4 reads the kernel every time)
    assert first["jitter"] == second["jitter"]
    assert first["order_id"] != second["order_id"]


def test_the_hooks_register_with_the_runtime_module_when_it_is_there(monkeypatch):
    # Given the runtime's snapshot_restore_py (bundled in Lambda's python3.12 runtime)
    registered: dict[str, Callable[[], None]] = {}
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = lambda hook: registered.setdefault("before", hook)  # type: ignore[attr-defined]
    runtime.register_after_restore = lambda hook: registered.setdefault("after", hook)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    # When the hooks are registered
    # Then both are registered, and they are the one reset and the re-seed
    assert per_process.register_snapshot_hooks() is True
    assert registered == {"before": per_process.before_snapshot, "after": per_process.after_restore}


def test_without_the_runtime_module_registering_does_nothing(monkeypatch):
    # Given no snapshot_restore_py (a developer machine, a test, the local runtime)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)
    # Then registering is a no-op, not an error
    assert per_process.register_snapshot_hooks() is False
