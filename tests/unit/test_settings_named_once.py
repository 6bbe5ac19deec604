"""Each setting is named once: only its settings model spells its environment variable.

The stack, the local environment, the benchmarks and the test kit render environments with
`Model.environment(...)` and name a variable with `Model.variable(name)`; a string literal that is a
settings variable there is a second place to change when the setting is renamed.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

from orderpipe_common.settings import FunctionSettings

ROOT = Path(__file__).resolve().parents[2]
# Code that configures functions; tests/ may spell the variables (they check what was rendered).
CHECKED = ("stacks", "devenv", "benchmarks", "testkit")


def _every_model() -> Iterator[type[FunctionSettings]]:
    for settings in sorted(ROOT.glob("functions/*/orderpipe_*/settings.py")):
        importlib.import_module(f"{settings.parent.name}.settings")
    pending = list(FunctionSettings.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        yield model


def _variables() -> dict[str, str]:
    return {model.variable(field): model.__name__ for model in _every_model() for field in model.model_fields}


def _string_constants(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_every_function_settings_model_is_collected():
    # Given the settings modules of every function
    variables = _variables()
    # Then each function's own variables are among those checked (the scan below is not vacuous)
    for variable in (
        "POWERTOOLS_SERVICE_NAME",
        "CASSANDRA_CONTACT_POINTS",
        "ORDERS_QUEUE_URL",
        "WRITER_MAX_IN_FLIGHT",
        "CACHE_TABLE_NAME",
        "PRODUCERS_TABLE_NAME",
    ):
        assert variable in variables


def test_no_settings_variable_is_spelled_outside_its_model():
    # Given every environment variable a settings model owns
    variables = _variables()
    # When the Python sources of the stack, the local environment, benchmarks and test kit are read
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value} (owned by {variables[value]})"
        for folder in CHECKED
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, value in _string_constants(path)
        if value in variables
    ]
    # Then none of them is a string literal there
    assert found == []
