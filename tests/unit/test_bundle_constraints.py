"""The bundles' constraints file stays in step with uv.lock (what the tests ran against)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REGENERATE = "regenerate it with: make constraints"


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"] if "version" in package}


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", line.strip())
        if match:
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_every_constraint_is_the_locked_version():
    # Given the lock and the constraints file bundling passes to pip
    locked, constrained = locked_versions(), pins(REPO / "functions" / "constraints.txt")
    # Then every constrained package is at its locked version
    assert constrained, "functions/constraints.txt has no pins"
    drift = {
        name: (version, locked.get(name))
        for name, version in constrained.items()
        if locked.get(name) != version
    }
    assert not drift, f"constraints differ from uv.lock {drift}; {REGENERATE}"


def test_every_function_requirement_is_constrained_at_its_pin():
    # Given each function's top-level bundle requirements
    constrained = pins(REPO / "functions" / "constraints.txt")
    for requirements in sorted((REPO / "functions").glob("*/requirements.txt")):
        # Then each is in the constraints at the same version (so the lock and the bundle agree)
        for name, version in pins(requirements).items():
            assert constrained.get(name) == version, f"{requirements}: {name}=={version}; {REGENERATE}"
