"""The operator tools install and run on their own: a wheel of ops/ alone, in a fresh virtual environment.

An operator's machine has none of this repository: `pip install orderpipe-ops` must give a working
`orderpipe` with the operator commands, whatever the development environment adds to it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.infrastructure.conftest import REPO_ROOT, require_tool


@pytest.fixture(scope="module")
def ops_only_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with nothing but the ops wheel and what it declares."""
    uv = require_tool("uv")
    work = tmp_path_factory.mktemp("ops-wheel")
    built = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(work / "dist"), str(REPO_ROOT / "ops")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (work / "dist").glob("orderpipe_ops-*.whl")
    venv = work / "venv"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    for command in (
        [uv, "venv", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    assert (venv / "lib" / f"python{python}" / "site-packages" / "orderpipe_ops").is_dir()
    return venv


def _run(venv: Path, *args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    # Nothing of this repository or its environment: only the venv's own bin on PATH.
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(state_dir),
        "ORDERPIPE_STATE_DIR": str(state_dir),
        "COLUMNS": "120",
    }
    return subprocess.run(
        [str(venv / "bin" / "orderpipe"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=state_dir,
        check=False,
        timeout=60,
    )


def test_the_ops_wheel_alone_installs_only_what_it_declares(ops_only_venv: Path) -> None:
    # Given the fresh environment, Then none of the repository's other packages is in it
    site = next((ops_only_venv / "lib").glob("python*/site-packages"))
    for other in ("orderpipe_common", "orderpipe_devenv", "orderpipe_testkit", "moto", "pydantic"):
        assert not (site / other).exists(), f"{other} came with the ops wheel"


def test_queue_status_help_works_from_the_ops_wheel_alone(ops_only_venv: Path, tmp_path: Path) -> None:
    # When an operator asks for help
    helped = _run(ops_only_venv, "queue", "status", "--help", state_dir=tmp_path)
    # Then it answers with the command's help and examples
    assert helped.returncode == 0, helped.stderr
    assert "orderpipe queue status --stack OrderPipe" in helped.stdout
    # And the top-level help lists the operator commands only (nothing else is installed)
    top = _run(ops_only_venv, "--help", state_dir=tmp_path)
    assert top.returncode == 0, top.stderr
    assert "operator" in top.stdout and "queue, dlq" in top.stdout
    assert "developer" not in top.stdout


def test_without_a_pipeline_the_ops_wheel_says_what_to_do(ops_only_venv: Path, tmp_path: Path) -> None:
    # Given no local pipeline and no stack named, When the operator asks for the status
    answered = _run(ops_only_venv, "queue", "status", state_dir=tmp_path)
    # Then it explains, rather than failing with a traceback
    assert answered.returncode == 2
    assert "no pipeline to talk to" in answered.stderr
    assert "Traceback" not in answered.stderr
