"""What a function builds once per execution environment (settings, clients, sessions), in one place.

Lambda keeps module state between invocations of an execution environment, so settings, boto3
clients, the Cassandra session and prepared statements are built on first use and reused. Every
such getter is declared with `@per_process` (a `functools.cache` that registers itself); anything
else to drop (the Cassandra session) registers a reset with `on_reset`. Tests, tools and SnapStart
hooks call `reset()` to start from scratch, in one call, for every function loaded in the process.
"""

from __future__ import annotations

import functools
import gc
import random
from collections.abc import Callable
from typing import Any

_resets: list[Callable[[], None]] = []
_snapshot_closers: list[Callable[[], None]] = []


def per_process[F: Callable[..., Any]](getter: F) -> F:
    """`functools.cache` whose cache `reset()` clears."""
    cached = functools.cache(getter)
    _resets.append(cached.cache_clear)
    return cached  # type: ignore[return-value]


def on_reset(reset_hook: Callable[[], None]) -> Callable[[], None]:
    """Register `reset_hook` to run on `reset()` (returns it, so it can decorate)."""
    _resets.append(reset_hook)
    return reset_hook


def reset() -> None:
    """Forget everything built per process, in registration order."""
    for reset_hook in list(_resets):
        reset_hook()


def init_done() -> None:
    """Call at the end of a handler module: what init built (modules, models, schemas) lives as long
    as the process, so the garbage collector's full passes stop scanning it (`gc.freeze`).

    Full passes come every few thousand objects that outlive a young collection (orders parsed in a
    batch live through its inserts), and each scanned the whole init heap: on the writer that was
    the largest part of its CPU per row above the raw driver's (docs/benchmarks.md, writer).
    """
    gc.freeze()


# --- Lambda SnapStart -------------------------------------------------------------------------------
# With SnapStart (orderpipe:snapStart) Lambda initializes a published version once, snapshots the
# execution environment and starts every new environment by restoring that snapshot. Connections
# open at snapshot time would be shared by every restored copy and long dead when it wakes up, and
# every copy would resume the same pseudo-random state. So: nothing per process survives the
# snapshot (clients and the Cassandra session are rebuilt on first use after restore), and the
# random module is re-seeded from the OS on restore (uuid4, secrets and os.urandom read the kernel
# on every call and need nothing).


def on_snapshot(closer: Callable[[], None]) -> Callable[[], None]:
    """Register `closer` to run before the snapshot, ahead of `reset()`: for what `reset()` lets go of in
    the background (a thread started then would be frozen in the snapshot, its connections with it)."""
    _snapshot_closers.append(closer)
    return closer


def before_snapshot() -> None:
    """Runtime hook: close and forget every client and session before the snapshot is taken."""
    for closer in list(_snapshot_closers):
        closer()
    reset()


def after_restore() -> None:
    """Runtime hook: this environment is one of many restored copies; make its randomness its own."""
    random.seed()


def register_snapshot_hooks() -> bool:
    """Register the hooks with the runtime's `snapshot_restore_py` (bundled in Lambda's python3.12+
    runtime, absent elsewhere: then this does nothing and returns False)."""
    try:
        from snapshot_restore_py import (
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    return True


register_snapshot_hooks()
