"""Lambda execution environments emulated as worker processes.

Lambda runs one invocation at a time per execution environment and keeps module state (clients,
the Cassandra session) between invocations. Powertools' resolvers and batch processors rely on that:
they hold the current event on module-level objects, so calling a handler from several threads at
once is unsafe. Each `LocalFunction` is therefore a pool of processes, each importing the handler
once and serving one invocation at a time, with the function's own environment.

Each invocation gets a Lambda context with the function's timeout (its deadline comes from it), and
the timeout is enforced as Lambda enforces it: at the deadline the invocation is interrupted
(SIGALRM in the worker), the environment's per-process state is dropped (Lambda would start a new
one) and the caller gets `FunctionTimeoutError` ("Task timed out after N seconds"): the API
Gateway emulator answers 502, the event source retries the whole batch.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import FrameType
from typing import Any

from orderpipe_devenv.lambda_events import LocalLambdaContext

log = logging.getLogger("orderpipe.runtime")

_handler: Callable[[dict[str, Any], Any], Any] | None = None
_function_name = "local"
_TIMED_OUT = "__orderpipe_local_function_timed_out__"


class FunctionTimeoutError(RuntimeError):
    """The invocation ran into the function's timeout (Lambda: "Task timed out after N seconds")."""


class _Interrupted(BaseException):
    """Raised in the worker at the timeout; a BaseException so that `except Exception` does not eat it."""


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise _Interrupted


def _initialize(handler_path: str, function_name: str, environment: Mapping[str, str]) -> None:
    global _handler, _function_name
    os.environ.update(environment)
    # Powertools warns on every invocation that emits no metric (a refused request, the schema step).
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    module_name, _, attribute = handler_path.rpartition(".")
    _handler = getattr(importlib.import_module(module_name), attribute)
    _function_name = function_name


def _invoke(event: dict[str, Any], timeout_seconds: float) -> tuple[Any, float]:
    """(the handler's answer, or the timed-out marker; the seconds it ran)."""
    assert _handler is not None
    context = LocalLambdaContext(function_name=_function_name, timeout_seconds=timeout_seconds)
    previous = signal.signal(signal.SIGALRM, _interrupt)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, timeout_seconds)
    try:
        return _handler(event, context), time.monotonic() - started
    except _Interrupted:
        # Lambda ends the execution environment; the closest here is to forget what it built.
        from orderpipe_common import per_process

        per_process.reset()
        return _TIMED_OUT, time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class LocalFunction:
    """A function with `concurrency` execution environments; `invoke` blocks until one answers."""

    def __init__(
        self,
        *,
        name: str,
        handler: str,
        environment: Mapping[str, str],
        concurrency: int,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.name = name
        self.handler = handler
        self.environment = dict(environment)
        self.concurrency = concurrency
        self.timeout_seconds = timeout_seconds
        self.timeouts = 0  # invocations that ran into the timeout
        self.slowest_seconds = 0.0  # the longest an invocation ran (not counting its wait for a free worker)
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.concurrency,
            # spawn: never fork a parent that runs threads (HTTP server, pollers)
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_initialize,
            initargs=(self.handler, self.name, self.environment),
        )

    def warm_up(self) -> None:
        """Start every environment now (cold starts happen here, not on the first requests)."""
        futures = [self._pool.submit(os.getpid) for _ in range(self.concurrency * 2)]
        for future in futures:
            future.result()

    def worker_pids(self) -> list[int]:
        """The process ids of the execution environments now running (for failure drills)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return [process.pid for process in processes.values() if process.pid is not None]

    def invoke(self, event: dict[str, Any]) -> Any:
        pool = self._pool
        try:
            result, seconds = pool.submit(_invoke, event, self.timeout_seconds).result()
        except BrokenProcessPool:
            # An environment died (killed, out of memory): Lambda would start a new one.
            with self._lock:
                if self._pool is pool:
                    self._pool = self._new_pool()
            raise
        with self._lock:
            self.slowest_seconds = max(self.slowest_seconds, seconds)
        if isinstance(result, str) and result == _TIMED_OUT:
            with self._lock:
                self.timeouts += 1
            log.error("%s: Task timed out after %.2f seconds", self.name, self.timeout_seconds)
            raise FunctionTimeoutError(
                f"{self.name}: Task timed out after {self.timeout_seconds:.2f} seconds"
            )
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
