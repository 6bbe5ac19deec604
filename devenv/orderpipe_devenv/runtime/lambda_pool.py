"""Lambda execution environments emulated as worker processes.

Lambda runs one invocation at a time per execution environment and keeps module state (clients,
the Cassandra session) between invocations. Powertools' resolvers and batch processors rely on that:
they hold the current event on module-level objects, so calling a handler from several threads at
once is unsafe. Each `LocalFunction` is therefore a pool of processes, each importing the handler
once and serving one invocation at a time, with the function's own environment.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from orderpipe_devenv.lambda_events import LocalLambdaContext

_handler: Callable[[dict[str, Any], Any], Any] | None = None
_function_name = "local"


def _initialize(handler_path: str, function_name: str, environment: Mapping[str, str]) -> None:
    global _handler, _function_name
    os.environ.update(environment)
    # Powertools warns on every invocation that emits no metric (a refused request, the schema step).
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    module_name, _, attribute = handler_path.rpartition(".")
    _handler = getattr(importlib.import_module(module_name), attribute)
    _function_name = function_name


def _invoke(event: dict[str, Any]) -> Any:
    assert _handler is not None
    return _handler(event, LocalLambdaContext(function_name=_function_name))


class LocalFunction:
    """A function with `concurrency` execution environments; `invoke` blocks until one answers."""

    def __init__(self, *, name: str, handler: str, environment: Mapping[str, str], concurrency: int) -> None:
        self.name = name
        self.handler = handler
        self.environment = dict(environment)
        self.concurrency = concurrency
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
        try:
            return self._pool.submit(_invoke, event).result()
        except BrokenProcessPool:
            # An environment died (killed, out of memory): Lambda would start a new one.
            self._pool = self._new_pool()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
