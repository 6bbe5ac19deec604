"""How `orderpipe run`'s banner names the command it prints: a path a shell in the same directory runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orderpipe_devenv.commands.run import pasteable_orderpipe


@pytest.fixture
def executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "repo" / ".venv" / "bin" / "orderpipe"
    script.parent.mkdir(parents=True)
    script.touch()
    monkeypatch.setattr(sys, "argv", [str(script), "run"])
    return script


def test_from_the_repository_root_it_is_the_venvs_relative_path(
    executable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `orderpipe run` started from the directory holding .venv, When the banner names the command
    monkeypatch.chdir(executable.parents[2])
    # Then it is the path relative to there, as the README writes it
    assert pasteable_orderpipe() == ".venv/bin/orderpipe"


def test_from_elsewhere_it_is_the_absolute_path(
    executable: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `orderpipe run` started from a directory outside the repository
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    # Then the banner names the executable by its absolute path
    assert pasteable_orderpipe() == str(executable)


def test_from_the_executables_own_directory_it_is_dot_slash(
    executable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the command started from its own directory: a bare name would be looked up on PATH
    monkeypatch.chdir(executable.parent)
    assert pasteable_orderpipe() == "./orderpipe"
