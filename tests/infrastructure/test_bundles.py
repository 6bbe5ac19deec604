"""The function assets, built as `npx cdk synth` builds them (offline, no Docker), load in the runtime's Python.

Each bundle is imported in a fresh python3.12 process with only the bundle and a boto3 (which the
Lambda runtime provides) on sys.path, with the environment the template gives the function.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from orderpipe_common import catalog
from stacks import example_context
from stacks.bundling import FUNCTIONS_DIR, asset_hash, runtime_python
from tests.infrastructure.conftest import CA_FILE, REPO_ROOT, cdk_cli, synthesize

NAMES = catalog.FUNCTION_NAMES
# Native modules a function's bundle must load on the runtime (manylinux wheels only).
NATIVE_IMPORTS = {"authorizer": ("jwt.algorithms", "cryptography.hazmat.bindings._rust")}
CASSANDRA_FUNCTIONS = {"writer", "reader", "schema"}
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make synth`'s `npx cdk synth` with bundling, no AWS credentials; without Node (never under CI)
    the same app in-process."""
    outdir = tmp_path_factory.mktemp("cdk-bundled")
    if os.environ.get("CI", "").lower() != "true" and not (REPO_ROOT / "node_modules" / "aws-cdk").is_dir():
        synthesize(bundling=True, outdir=outdir)
        return outdir
    # As `make synth` runs it: cdk.json names no cluster, the example one is passed with -c.
    result = cdk_cli(["synth", "--quiet", "--output", str(outdir), *example_context.cli_options()])
    assert result.returncode == 0, result.stdout + result.stderr
    return outdir


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    handler = f"orderpipe_{name}.handler.lambda_handler"
    (found,) = [
        r["Properties"] for r in template["Resources"].values() if r["Properties"].get("Handler") == handler
    ]
    return found


@pytest.fixture(scope="module")
def template(assembly: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((assembly / "OrderPipe.template.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def runtime_boto3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the Lambda runtime provides beside the bundle: boto3 and its dependencies (from this venv, 3.12)."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    target = tmp_path_factory.mktemp("runtime-provided")
    for name in RUNTIME_PROVIDED:
        if (site / name).exists():
            (target / name).symlink_to(site / name)
    return target


def bundle_dir(assembly: Path, template: dict[str, Any], name: str) -> Path:
    key = _function(template, name)["Code"]["S3Key"]
    return assembly / f"asset.{key.removesuffix('.zip')}"


def test_synth_without_aws_credentials_builds_every_function_asset_here(
    assembly: Path, template: dict[str, Any]
) -> None:
    # Given `npx cdk synth` run with no AWS credentials, config or metadata service (the fixture)
    manifest = json.loads((assembly / "manifest.json").read_text())
    # Then it needed no AWS look-up (a stack that does would list missing context)...
    assert not manifest.get("missing"), manifest.get("missing")
    # ...and every function's asset was bundled on this machine, its code at the bundle's root
    for name in NAMES:
        assert (bundle_dir(assembly, template, name) / f"orderpipe_{name}" / "handler.py").is_file(), name


@pytest.mark.parametrize("name", NAMES)
def test_bundle_contents(assembly: Path, template: dict[str, Any], name: str) -> None:
    bundle = bundle_dir(assembly, template, name)
    assert (bundle / "orderpipe_common" / "__init__.py").is_file()
    assert (bundle / "aws_lambda_powertools").is_dir()
    # Tracing is Lambda's own (active tracing): no end-of-support X-Ray SDK, no tracing SDK at all.
    assert not (bundle / "aws_xray_sdk").exists()
    assert not (bundle / "opentelemetry").exists()
    for provided in ("boto3", "botocore", "s3transfer"):
        assert not (bundle / provided).exists(), (
            f"{provided} is provided by the runtime and must not be bundled"
        )
    assert (bundle / "cassandra").is_dir() == (name in CASSANDRA_FUNCTIONS)
    if (bundle / "cassandra").is_dir():
        assert list((bundle / "cassandra").glob("*.cpython-312-x86_64-linux-gnu.so")), (
            "driver wheel without C modules"
        )
    pyc = list((bundle / "orderpipe_common" / "__pycache__").glob("*.pyc"))
    assert pyc and all(".cpython-312." in p.name for p in pyc)


_IMPORT_CHECK = """
import importlib, sys, time
assert sys.version_info[:2] == (3, 12), sys.version
started = time.perf_counter()
module = importlib.import_module({module!r})
assert callable(getattr(module, "lambda_handler")), "no lambda_handler"
if {cassandra!r}:
    from cassandra.io.libevreactor import LibevConnection
    import cassandra.cluster
    assert LibevConnection is not None
    # Amazon Keyspaces: SigV4 (imported only when that backend connects) and the shipped roots.
    from cassandra_sigv4.auth import SigV4AuthProvider
    from orderpipe_common.cassandra_backends import KEYSPACES_CA_FILE
    assert SigV4AuthProvider is not None and KEYSPACES_CA_FILE.is_file(), KEYSPACES_CA_FILE
    import os, pathlib
    task_root = pathlib.Path(os.environ["LAMBDA_TASK_ROOT"]).resolve()
    assert task_root in KEYSPACES_CA_FILE.parents, f"the roots are not in the bundle: {{KEYSPACES_CA_FILE}}"
else:
    try:
        import cassandra
    except ImportError:
        pass
    else:
        raise AssertionError("cassandra-driver is bundled into a function that does not use it")
for native in {native!r}:
    importlib.import_module(native)
if {native!r}:
    from jwt.algorithms import has_crypto
    assert has_crypto, "PyJWT without cryptography: RS256 unavailable"
print(f"imported in {{time.perf_counter() - started:.3f}}s")
"""


@pytest.mark.parametrize("name", NAMES)
def test_bundle_imports_with_the_runtime_python(
    assembly: Path, template: dict[str, Any], runtime_boto3: Path, name: str
) -> None:
    if not (FUNCTIONS_DIR / name / f"orderpipe_{name}" / "handler.py").exists():
        pytest.xfail(f"not built yet: functions/{name}/orderpipe_{name}/handler.py does not exist")
    try:
        python = runtime_python()
    except RuntimeError as error:
        pytest.fail(str(error))
    bundle = bundle_dir(assembly, template, name)
    variables = {
        key: value if isinstance(value, str) else f"placeholder-{key.lower()}"
        for key, value in _function(template, name)["Environment"]["Variables"].items()
    }
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_LAMBDA_FUNCTION_NAME": f"orderpipe-{name}",
        "LAMBDA_TASK_ROOT": str(bundle),
        "PYTHONPATH": os.pathsep.join([str(bundle), str(runtime_boto3)]),
        **variables,
    }
    script = _IMPORT_CHECK.format(
        module=f"orderpipe_{name}.handler",
        cassandra=name in CASSANDRA_FUNCTIONS,
        native=NATIVE_IMPORTS.get(name, ()),
    )
    # -s: no user site; -E is not used because PYTHONPATH is how the runtime adds the bundle.
    result = subprocess.run(
        [python, "-s", "-c", textwrap.dedent(script)],
        cwd=bundle,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"{name} bundle failed to import:\n{result.stdout}\n{result.stderr}"


def test_asset_hash_covers_shared_code_and_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from stacks import bundling

    functions = tmp_path / "functions"
    shutil.copytree(
        FUNCTIONS_DIR, functions, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*cache")
    )
    monkeypatch.setattr(bundling, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(bundling, "FUNCTIONS_DIR", functions)
    monkeypatch.setattr(bundling, "COMMON_PACKAGE", functions / "common" / "orderpipe_common")
    monkeypatch.setattr(bundling, "CONSTRAINTS_FILE", functions / "constraints.txt")
    before = {name: asset_hash(name) for name in NAMES}
    assert len(set(before.values())) == len(NAMES)

    (functions / "common" / "orderpipe_common" / "tables.py").write_text("# changed\n", encoding="utf-8")
    after_common = {name: asset_hash(name) for name in NAMES}
    assert all(after_common[name] != before[name] for name in NAMES), "shared code must rebuild every asset"

    requirements = functions / "writer" / "requirements.txt"
    requirements.write_text(requirements.read_text() + "\n# changed\n")
    after_pin = {name: asset_hash(name) for name in NAMES}
    assert after_pin["writer"] != after_common["writer"]
    assert {n: after_pin[n] for n in NAMES if n != "writer"} == {
        n: after_common[n] for n in NAMES if n != "writer"
    }

    constraints = functions / "constraints.txt"
    constraints.write_text(constraints.read_text() + "\n# changed\n")
    after_constraints = {name: asset_hash(name) for name in NAMES}
    assert all(after_constraints[n] != after_pin[n] for n in NAMES), (
        "a locked version change rebuilds every asset"
    )


def test_the_clusters_ca_ships_at_the_bundle_root_and_is_in_the_asset_hash(tmp_path: Path) -> None:
    from stacks.bundling import build_bundle
    from stacks.functions import CA_BUNDLE_NAME

    # Given the cluster's CA as orderpipe:cassandraTlsCaFile names it,
    ca = tmp_path / "ca.pem"
    ca.write_bytes((REPO_ROOT / CA_FILE).read_bytes())
    # when the schema bundle is built with it, then the PEM is at the bundle root, byte for byte,
    build_bundle("schema", tmp_path / "bundle", extra_files={CA_BUNDLE_NAME: ca})
    assert (tmp_path / "bundle" / CA_BUNDLE_NAME).read_bytes() == ca.read_bytes()
    # and another CA (or none) gives another asset hash, so a new CA is deployed.
    with_ca = asset_hash("schema", {CA_BUNDLE_NAME: ca})
    ca.write_text(ca.read_text().replace("A", "B", 1))
    assert len({asset_hash("schema"), with_ca, asset_hash("schema", {CA_BUNDLE_NAME: ca})}) == 3
