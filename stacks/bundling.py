"""Function assets built on this machine, without Docker.

Each bundle = `pip install -r functions/<name>/requirements.txt` for the Lambda runtime's platform
(manylinux wheels only, no compiler) + `orderpipe_common/` + `orderpipe_<name>/`. Packages the runtime
already provides (boto3, botocore, s3transfer) are removed when something pulls them in. pip runs under the runtime's own Python (3.12), so the .pyc files it writes are the ones
the runtime loads.

The asset hash is computed here over the function's folder, the shared package and this recipe,
so a change to shared code or to a pin rebuilds every affected asset (CDK's default source hash
would only cover the function's folder).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"
COMMON_PACKAGE = FUNCTIONS_DIR / "common" / "orderpipe_common"
# Every transitive version, exported from uv.lock: bundles install what the tests ran against.
CONSTRAINTS_FILE = FUNCTIONS_DIR / "constraints.txt"
DEPS_CACHE_DIR = Path(os.environ.get("ORDERPIPE_BUNDLE_CACHE", REPO_ROOT / ".build" / "bundle-deps"))

# Runtime and architecture of every function (see docs/deploy.md for the choice).
PYTHON_VERSION = "3.12"
PIP_PLATFORM = "manylinux2014_x86_64"
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
# Bump when the recipe below changes in a way that changes the bundle.
RECIPE_VERSION = "1"

_IGNORED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


class BundlingError(RuntimeError):
    pass


def runtime_python() -> str:
    """The interpreter matching the Lambda runtime: $ORDERPIPE_BUNDLING_PYTHON, pyenv's 3.12, python3.12."""
    explicit = os.environ.get("ORDERPIPE_BUNDLING_PYTHON")
    if explicit:
        return explicit
    candidates: list[str] = []
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"))
    on_path = shutil.which(f"python{PYTHON_VERSION}")
    if on_path:
        candidates.append(on_path)
    if sys.version_info[:2] == tuple(int(p) for p in PYTHON_VERSION.split(".")):
        candidates.append(sys.executable)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise BundlingError(
        f"no Python {PYTHON_VERSION} found to build the Lambda bundles (looked in {pyenv_root}/versions, "
        f"PATH); install it (pyenv install {PYTHON_VERSION}) or set ORDERPIPE_BUNDLING_PYTHON"
    )


def _source_files(root: Path) -> list[Path]:
    if not root.exists():
        return []
    if root.is_file():
        return [root]
    files = []
    for path in root.rglob("*"):
        ignored = _IGNORED_DIRS & set(path.relative_to(root).parts) or path.suffix in _IGNORED_SUFFIXES
        if path.is_file() and not ignored:
            files.append(path)
    return sorted(files)


def tree_hash(*roots: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for root in roots:
        for path in _source_files(root):
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def asset_hash(name: str, extra_files: Mapping[str, Path] | None = None) -> str:
    """Covers functions/<name>/ (code and requirements.txt), the shared package, the recipe and any
    extra files (their bundle names and content)."""
    recipe = f"{RECIPE_VERSION}|{PYTHON_VERSION}|{PIP_PLATFORM}|{','.join(RUNTIME_PROVIDED)}"
    code = tree_hash(FUNCTIONS_DIR / name, COMMON_PACKAGE, CONSTRAINTS_FILE, extra=recipe)
    if not extra_files:
        return code  # unchanged for bundles without extra files
    digest = hashlib.sha256(code.encode())
    for bundle_name, source in sorted(extra_files.items()):
        digest.update(bundle_name.encode() + b"\0" + hashlib.sha256(source.read_bytes()).digest())
    return digest.hexdigest()


def _copy_package(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*cache"))


def _dependencies(requirements: Path, interpreter: str) -> Path:
    """The installed requirements, built once per distinct requirements file (writer, reader and
    schema share theirs) and kept under .build/bundle-deps/ (ignored by git) for later synths."""
    recipe = f"{RECIPE_VERSION}|{PYTHON_VERSION}|{PIP_PLATFORM}|{','.join(RUNTIME_PROVIDED)}|"
    key = hashlib.sha256(
        recipe.encode() + requirements.read_bytes() + CONSTRAINTS_FILE.read_bytes()
    ).hexdigest()[:24]
    cached = DEPS_CACHE_DIR / key
    if cached.is_dir():
        return cached
    DEPS_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=DEPS_CACHE_DIR))
    pip = [
        interpreter,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--requirement",
        str(requirements),
        "--constraint",
        str(CONSTRAINTS_FILE),
        "--target",
        str(staging),
        "--platform",
        PIP_PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
    ]
    result = subprocess.run(pip, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundlingError(
            f"pip failed for {requirements} ({' '.join(pip)}):\n{result.stdout}\n{result.stderr}"
        )
    for entry in list(staging.iterdir()):
        distribution = entry.name.split("-")[0].lower()
        if distribution in RUNTIME_PROVIDED or entry.name == "bin":  # console scripts: of no use in Lambda
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    try:
        staging.rename(cached)
    except OSError:  # built concurrently by another process: use theirs
        shutil.rmtree(staging, ignore_errors=True)
    return cached


def build_bundle(
    name: str,
    output_dir: Path,
    *,
    python: str | None = None,
    extra_files: Mapping[str, Path] | None = None,
) -> None:
    """Build the bundle of function `name` into output_dir (also used by tests and tools).

    extra_files: bundle-relative name -> source file, copied in as is (e.g. the cluster's CA PEM).
    """
    interpreter = python or runtime_python()
    function_dir = FUNCTIONS_DIR / name
    requirements = function_dir / "requirements.txt"
    if not requirements.exists():
        raise BundlingError(f"{requirements} does not exist: every function pins its bundle there")
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(_dependencies(requirements, interpreter), output_dir, dirs_exist_ok=True, symlinks=True)
    packages = [COMMON_PACKAGE, function_dir / f"orderpipe_{name}"]
    for package in packages:
        target = output_dir / package.name
        if target.exists():
            shutil.rmtree(target)
        if package.is_dir():  # a function still being written may not have its package yet
            _copy_package(package, target)
    compiled = subprocess.run(
        [interpreter, "-m", "compileall", "-q", *(str(output_dir / p.name) for p in packages if p.is_dir())],
        capture_output=True,
        text=True,
        check=False,
    )
    if compiled.returncode != 0:
        raise BundlingError(f"compileall failed for {name}:\n{compiled.stdout}\n{compiled.stderr}")
    for bundle_name, source in (extra_files or {}).items():
        shutil.copyfile(source, output_dir / bundle_name)


@jsii.implements(cdk.ILocalBundling)
class LocalPythonBundling:
    def __init__(self, name: str, extra_files: Mapping[str, Path] | None = None) -> None:
        self.name = name
        self.extra_files = dict(extra_files or {})

    def try_bundle(self, output_dir: str, options: Any = None, **kwargs: Any) -> bool:
        started = time.monotonic()
        build_bundle(self.name, Path(output_dir), extra_files=self.extra_files)
        if os.environ.get("ORDERPIPE_BUNDLING_VERBOSE"):
            print(f"bundled {self.name} in {time.monotonic() - started:.1f}s", file=sys.stderr)
        return True


def function_code(name: str, *, extra_files: Mapping[str, Path] | None = None) -> lambda_.Code:
    """Lambda code for functions/<name>, bundled locally (no Docker), plus extra_files at its root."""
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR / name),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=asset_hash(name, extra_files),
        bundling=cdk.BundlingOptions(
            # Never pulled: local bundling always succeeds or raises. CDK requires an image anyway.
            image=cdk.DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
            local=LocalPythonBundling(name, extra_files),
            command=["false"],
        ),
    )
