"""One reset of every function's per-process state (settings, clients, the Cassandra session).

Lambda builds these once per execution environment (orderpipe_common.per_process); a test, drill
or benchmark that changes the environment between calls in one process resets them here. Every
function's modules are imported first, so their getters are registered whatever was loaded so far.
"""

from __future__ import annotations

import importlib

from orderpipe_common import catalog, per_process


def reset_process_state() -> None:
    for name in catalog.FUNCTION_NAMES:
        importlib.import_module(catalog.handler_path(name).rpartition(".")[0])
    per_process.reset()
