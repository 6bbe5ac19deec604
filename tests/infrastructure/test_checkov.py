"""checkov, an outside judge, on the synthesized template of every configuration the tests synthesize.

Every failed check is either fixed in the stack or listed in stacks/checkov_skips.yaml with the
resources it is accepted for and a written reason. checkov lives in its own virtualenv
(`.venv-checkov/`, made by `make setup`): its dependencies conflict with this project's. Missing, it
is a skip locally and a failure under CI.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infrastructure.conftest import REPO_ROOT, VARIANTS, in_ci

SKIPS_FILE = REPO_ROOT / "stacks" / "checkov_skips.yaml"


@dataclass(frozen=True)
class Finding:
    variant: str
    check_id: str
    logical_id: str
    title: str


@dataclass(frozen=True)
class CheckovRun:
    failed: list[Finding]
    passed_per_variant: dict[str, int]


def checkov_executable() -> str:
    configured = os.environ.get("ORDERPIPE_CHECKOV")
    candidates = [configured] if configured else []
    candidates += [str(REPO_ROOT / ".venv-checkov" / "bin" / "checkov"), shutil.which("checkov") or ""]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = "checkov not found (make setup installs it into .venv-checkov/)"
    if in_ci():
        pytest.fail(f"checkov is required under CI: {message}", pytrace=False)
    pytest.skip(message)


def load_skips() -> dict[str, dict[str, Any]]:
    skips: dict[str, dict[str, Any]] = yaml.safe_load(SKIPS_FILE.read_text())
    return skips


@pytest.fixture(scope="module")
def checkov_run(nagged_outdirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> CheckovRun:
    checkov = checkov_executable()
    folder = tmp_path_factory.mktemp("checkov-templates")
    for name, outdir in nagged_outdirs.items():
        shutil.copyfile(outdir / "OrderPipe.template.json", folder / f"{name}.template.json")
    # One run over all templates (checkov's start-up dominates); --skip-download: offline.
    result = subprocess.run(
        [
            checkov,
            "--directory",
            str(folder),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    # Exit code 1 means "checks failed", which the tests below judge; anything else is a broken run.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed: list[Finding] = []
    passed: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    for report in reports:
        for outcome in ("passed_checks", "failed_checks"):
            for check in report["results"][outcome]:
                variant = Path(check["file_path"]).name.removesuffix(".template.json")
                if outcome == "passed_checks":
                    passed[variant] += 1
                    continue
                failed.append(
                    Finding(
                        variant=variant,
                        check_id=check["check_id"],
                        logical_id=check["resource"].split(".", 1)[1],
                        title=check["check_name"],
                    )
                )
    return CheckovRun(failed=failed, passed_per_variant=passed)


def _patterns(entry: dict[str, Any], variant: str) -> list[str]:
    """The resource globs an entry accepts in this configuration: `resources` in every one, and
    `per_variant` (configuration-name glob -> resource globs) only in the configurations it names."""
    patterns = list(entry.get("resources", []))
    for variants, resources in entry.get("per_variant", {}).items():
        if fnmatch.fnmatchcase(variant, variants):
            patterns += resources
    return patterns


def _skipped(finding: Finding, skips: dict[str, dict[str, Any]]) -> bool:
    entry = skips.get(finding.check_id)
    return entry is not None and any(
        fnmatch.fnmatchcase(finding.logical_id, pattern) for pattern in _patterns(entry, finding.variant)
    )


def test_checkov_judged_every_configuration(checkov_run: CheckovRun) -> None:
    # Given every synthesized configuration, when checkov ran, then it passed checks in each of them
    # (a template it could not parse would show no checks at all).
    assert all(count > 20 for count in checkov_run.passed_per_variant.values()), (
        checkov_run.passed_per_variant
    )


def test_every_checkov_finding_is_fixed_or_skipped_with_a_reason(checkov_run: CheckovRun) -> None:
    skips = load_skips()
    unexplained = sorted(
        {(f.check_id, f.logical_id, f.title, f.variant) for f in checkov_run.failed if not _skipped(f, skips)}
    )
    assert not unexplained, "fix these or add them to stacks/checkov_skips.yaml with a reason:\n" + "\n".join(
        map(str, unexplained)
    )


def test_every_skip_has_a_reason_and_is_still_needed(checkov_run: CheckovRun) -> None:
    skips = load_skips()
    for check_id, entry in skips.items():
        assert len(entry.get("reason", "")) >= 80, f"{check_id}: the reason must say why"
        used = [f for f in checkov_run.failed if f.check_id == check_id and _skipped(f, {check_id: entry})]
        assert used, f"{check_id} is skipped but no configuration fails it any more: remove the entry"
        for pattern in entry.get("resources", []):
            assert any(fnmatch.fnmatchcase(f.logical_id, pattern) for f in used), (
                f"{check_id}: resource pattern {pattern!r} matches no finding any more"
            )
        for variants, patterns in entry.get("per_variant", {}).items():
            for pattern in patterns:
                assert any(
                    fnmatch.fnmatchcase(f.variant, variants) and fnmatch.fnmatchcase(f.logical_id, pattern)
                    for f in used
                ), f"{check_id}: {pattern!r} in configurations {variants!r} matches no finding any more"
