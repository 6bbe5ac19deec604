"""Lambda execution environments emulated as worker processes.

Lambda runs one invocation at a time per execution environment and keeps module state (clients,
the Cassandra session) between invocations. Powertools' resolvers and batch processors rely on that:
they hold the current event on module-level objects, so calling a handler from several threads at
once is unsafe. Each `LocalFunction` is therefore a pool of processes, each importing the handler
once and serving one invocation at a time, with the function's own environment.

Each environment is one spawned process on its own pipe: the calling thread (a gateway request, an
event-source invocation) sends the event and waits for the answer itself. A `ProcessPoolExecutor`
did the same through a feeder thread, a manager thread, a shared call queue and a result queue,
four thread hand-offs and two locks per invocation in the gateway's process, which cost more CPU
per single POST than the ingest handler itself (docs/benchmarks.md, end_to_end). An environment
that dies (killed, out of memory) fails the invocation it was running with `BrokenProcessPool`, and
is replaced on the next invocation, as Lambda starts a new one.

Each invocation gets a Lambda context with the function's timeout (its deadline comes from it), and
the timeout is enforced as Lambda enforces it: at the deadline the invocation is interrupted
(SIGALRM in the worker), the environment's per-process state is dropped (Lambda would start a new
one) and the caller gets `FunctionTimeoutError` ("Task timed out after N seconds"): the API
Gateway emulator answers 502, the event source retries the whole batch.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
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
    # Spawning re-imported the parent's main module first: if that imported the functions' logger,
    # it was created before this environment (POWERTOOLS_SERVICE_NAME) was set.
    if "orderpipe_common.observability" in sys.modules:
        from orderpipe_common.observability import follow_environment

        follow_environment()
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


def _serve(
    connection: Connection, handler_path: str, function_name: str, environment: Mapping[str, str]
) -> None:
    """An execution environment's loop: one invocation at a time until the pipe closes."""
    _initialize(handler_path, function_name, environment)
    connection.send(os.getpid())  # ready: the handler is imported (the cold start is over)
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return  # the runtime is gone or closed this environment
        if request is None:
            return
        event, timeout_seconds = request
        try:
            answer: tuple[bool, Any, str] = (True, _invoke(event, timeout_seconds), "")
        except Exception as error:
            # The handler raised: the caller gets the exception (Lambda's function error), with the
            # traceback from here as its cause, as ProcessPoolExecutor gave it.
            answer = (False, error, traceback.format_exc())
        try:
            connection.send(answer)
        except Exception:  # an answer or exception that does not pickle
            connection.send((False, RuntimeError(f"{function_name}: {answer[1]!r}"), answer[2]))


class _RemoteTracebackError(Exception):
    """The cause given to an exception the handler raised in its environment: its traceback there."""

    def __init__(self, text: str) -> None:
        super().__init__(text)

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


class _Environment:
    def __init__(self, process: BaseProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection

    def stop(self) -> None:
        """Ask the environment to end, and end it if it does not (stuck, or already dead)."""
        with contextlib.suppress(OSError):
            self.connection.send(None)
        self.connection.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


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
        self._available = threading.Condition(self._lock)
        self._idle: list[_Environment] = []
        self._all: list[_Environment] = []  # idle or running an invocation
        self._starting = 0
        self._closed = False
        # spawn: never fork a parent that runs threads (HTTP server, pollers)
        self._context = multiprocessing.get_context("spawn")

    def _start_environment(self) -> _Environment:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_serve,
            args=(theirs, self.handler, self.name, self.environment),
            name=f"{self.name}-environment",
            daemon=True,
        )
        process.start()
        theirs.close()
        environment = _Environment(process, ours)
        try:
            ours.recv()  # its pid once the handler is imported
        except (EOFError, OSError):
            environment.stop()
            raise BrokenProcessPool(f"{self.name}: an execution environment died while starting") from None
        return environment

    def _acquire(self) -> _Environment:
        with self._available:
            while True:
                if self._closed:
                    raise RuntimeError(f"{self.name}: the function is closed")
                if self._idle:
                    environment = self._idle.pop()
                    if environment.process.is_alive():
                        return environment
                    self._all.remove(environment)  # died while idle: Lambda would start a new one
                    environment.stop()
                    continue
                if len(self._all) + self._starting < self.concurrency:
                    self._starting += 1
                    break
                self._available.wait()
        # A new environment (a cold start), started outside the lock.
        try:
            environment = self._start_environment()
        except BaseException:
            with self._available:
                self._starting -= 1
                self._available.notify()
            raise
        with self._available:
            self._starting -= 1
            self._all.append(environment)
        return environment

    def _release(self, environment: _Environment, *, broken: bool) -> None:
        with self._available:
            retire = broken or self._closed
            if retire:
                self._all.remove(environment)
            else:
                self._idle.append(environment)
            if self._closed:
                self._available.notify_all()  # close() waits for the running invocations too
            else:
                self._available.notify()
        if retire:
            environment.stop()

    def warm_up(self) -> None:
        """Start every environment now, side by side (cold starts happen here, not on the first requests)."""
        with self._lock:
            missing = self.concurrency - len(self._all)
        if missing <= 0:
            return
        with ThreadPoolExecutor(max_workers=missing) as starter:
            futures = [starter.submit(self._acquire) for _ in range(missing)]
        failures = [future.exception() for future in futures if future.exception() is not None]
        for future in futures:
            if future.exception() is None:
                self._release(future.result(), broken=False)
        if failures:
            raise failures[0]  # type: ignore[misc]

    def worker_pids(self) -> list[int]:
        """The process ids of the execution environments now running (for failure drills)."""
        with self._lock:
            processes = [environment.process for environment in self._all]
        return [process.pid for process in processes if process.pid is not None and process.is_alive()]

    def invoke(self, event: dict[str, Any]) -> Any:
        environment = self._acquire()
        try:
            environment.connection.send((event, self.timeout_seconds))
            answered, answer, remote_traceback = environment.connection.recv()
        except (EOFError, OSError):
            # The environment died (killed, out of memory): Lambda would start a new one.
            self._release(environment, broken=True)
            raise BrokenProcessPool(
                f"{self.name}: the execution environment ended abruptly during the invocation"
            ) from None
        except BaseException:
            self._release(environment, broken=True)  # its pipe's state is unknown
            raise
        self._release(environment, broken=False)
        if not answered:
            raise answer from _RemoteTracebackError(remote_traceback)
        result, seconds = answer
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
        """Stop every environment; invocations running now finish first (each within its timeout)."""
        with self._available:
            self._closed = True
            deadline = time.monotonic() + self.timeout_seconds + 5
            while (len(self._idle) < len(self._all) or self._starting) and time.monotonic() < deadline:
                self._available.wait(timeout=max(0.0, deadline - time.monotonic()))
            environments, self._idle, self._all = list(self._idle), [], []
        for environment in environments:
            environment.stop()
