"""The `submit` command module: it joins the `orderpipe` command line, and its help's examples parse."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

import pytest

from orderpipe_client import cli
from orderpipe_ops.cli import build_parser


def test_it_joins_the_orderpipe_command_line_as_a_producer_command() -> None:
    # Given the orderpipe command line built with this module among its command groups
    parser = build_parser([cli])
    # When a submit command is parsed
    args = parser.parse_args(["submit", "orders.jsonl", "--url", "http://127.0.0.1:8080", "--rate", "50"])
    # Then it runs the submit handler, with the options it was given, listed for producers
    assert args.handler is cli.run_submit
    assert (args.file, args.rate, args.concurrency) == (Path("orders.jsonl"), 50.0, 4)
    assert "producer" in str(parser.description) and "submit" in str(parser.description)


def test_the_help_examples_parse_and_none_authenticates_with_an_api_key_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the command's --help
    with pytest.raises(SystemExit) as exited:
        cli.main(["submit", "--help"], prog="orderpipe-client")
    assert exited.value.code == 0
    text = capsys.readouterr().out
    # Then each example command in it parses with the command's own options
    examples = " ".join(text.split("examples:")[1].split("CSV columns:")[0].split("\\\n")).splitlines()
    commands = [line.strip() for line in examples if "orderpipe-client submit" in line]
    assert len(commands) == 5
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    for command in commands:
        words = shlex.split(command)
        parsed: Any = parser.parse_args(words[words.index("submit") :])
        assert parsed.handler is cli.run_submit
        # ...and none authenticates with an API key alone, which the API never accepts
        assert not parsed.api_key or parsed.sigv4_region, command


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ([], "no API URL"),
        (["--url", "ftp://x"], "must start with http"),
        (["--url", "http://127.0.0.1:9", "--api-key", "k", "--batch-size", "101"], "1 to 100"),
        (["--url", "http://127.0.0.1:9"], "no credentials"),
        (["--url", "http://127.0.0.1:9", "--token-url", "http://127.0.0.1:9/token"], "needs --client-id"),
    ],
)
def test_bad_arguments_exit_two_saying_what_is_wrong(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    complaint: str,
) -> None:
    for name in (
        "ORDERPIPE_URL",
        "ORDERPIPE_API_KEY",
        "ORDERPIPE_TOKEN_URL",
        "ORDERPIPE_CLIENT_ID",
        "ORDERPIPE_CLIENT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    source = tmp_path / "orders.jsonl"
    source.write_text("{}\n")
    assert cli.main(["submit", str(source), *arguments]) == cli.EXIT_USAGE
    assert complaint in capsys.readouterr().err
