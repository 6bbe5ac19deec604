"""What a function builds once per execution environment (settings, clients, sessions), in one place.

Lambda keeps module state between invocations of an execution environment, so settings, boto3
clients, the Cassandra session and prepared statements are built on first use and reused. Every
such getter is declared with `@per_process` (a `functools.cache` that registers itself); anything
else to drop (the Cassandra session) registers a reset with `on_reset`. Tests, tools and SnapStart
hooks call `reset()` to start from scratch, in one call, for every function loaded in the process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_resets: list[Callable[[], None]] = []


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
