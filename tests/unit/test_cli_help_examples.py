"""The examples in `orderpipe ... --help` parse as printed: a renamed or mistyped flag fails here."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator

import pytest

from orderpipe_ops.cli import build_parser

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _parsers(
    parser: argparse.ArgumentParser, path: list[str]
) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, [*path, name])


def _examples(help_text: str) -> Iterator[str]:
    """The `orderpipe ...` command lines after an "Examples:" line, continuations joined."""
    section = re.search(r"(?im)^examples:\s*$", help_text)
    if section is None:
        return
    pending = ""
    for raw in help_text[section.end() :].splitlines():
        line = raw.strip()
        if pending:
            line = f"{pending} {line}"
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        yield line


def _command(line: str) -> list[str] | None:
    """The arguments after `orderpipe`, or None for a line that runs something else (or is prose)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return None
    while tokens and _ASSIGNMENT.match(tokens[0]):  # VAR=value orderpipe ...
        tokens.pop(0)
    return tokens[1:] if tokens[:1] == ["orderpipe"] else None


def _all_examples() -> list[tuple[str, list[str], list[str]]]:
    found = []
    for path, parser in _parsers(build_parser(), []):
        for line in _examples(parser.format_help()):
            arguments = _command(line)
            if arguments is not None:
                found.append((line, path, arguments))
    return found


EXAMPLES = _all_examples()


def test_the_operator_commands_have_examples_to_check():
    # Given every parser of the `orderpipe` command, When their help texts are read
    commands = {" ".join(path) for _, path, _ in EXAMPLES}
    # Then the examples of the operator commands are among those checked (the check is not vacuous)
    assert {"queue status", "dlq inspect", "dlq redrive", "producers add"} <= commands


@pytest.mark.parametrize(("line", "path", "arguments"), EXAMPLES, ids=[line for line, _, _ in EXAMPLES])
def test_each_help_example_parses_as_the_command_it_documents(line, path, arguments):
    # Given an example printed in a command's --help
    parser = build_parser()
    # When it is parsed by the `orderpipe` parser itself
    try:
        parsed = parser.parse_args(arguments)
    except SystemExit as error:
        pytest.fail(f"`{line}` (in `orderpipe {' '.join(path)} --help`) does not parse: exit {error.code}")
    # Then it is accepted, names the command whose help shows it, and has something to run
    assert arguments[: len(path)] == path, f"`{line}` is shown in `orderpipe {' '.join(path)} --help`"
    assert callable(parsed.handler)
