"""The pipeline's functions: one name each, and where each one's code is.

Function `name` lives in the package `orderpipe_<name>` (functions/<name>/ in the repository and at
the root of its bundle); Lambda calls `orderpipe_<name>.handler.lambda_handler`. The stack and the
local runtime take handler paths from here.
"""

from __future__ import annotations

FUNCTION_NAMES: tuple[str, ...] = ("ingest", "writer", "reader", "schema", "authorizer")


def package(name: str) -> str:
    if name not in FUNCTION_NAMES:
        raise ValueError(f"no function named {name!r}; the functions are {', '.join(FUNCTION_NAMES)}")
    return f"orderpipe_{name}"


def handler_path(name: str) -> str:
    return f"{package(name)}.handler.lambda_handler"
