"""Cold init of each function in the deployment's shape: its real bundle, the runtime's Python.

Each function's bundle is built as `cdk synth` builds it (`stacks.bundling.build_bundle`: the pinned
wheels for manylinux x86_64, compiled bytecode, boto3 left to the runtime) and every sample is a
fresh `python3.12 -S` process whose path is the bundle, then the boto3 the Lambda runtime provides
(this environment's, symlinked) - nothing else, so no package of the development environment can
leak in (numpy in the venv made cassandra-driver's import three times slower than in Lambda).
AWS_ENDPOINT_URL points at a closed loopback port: nothing may (or does) touch the network.

Against each function: its bare libraries in an equally fresh process of the same bundle (boto3 +
the clients it creates; cassandra-driver where used). Both are timed inside the child around the
imports and client creation; the ratio is taken on CPU time (`process_time`), which other work on
a shared machine inflates far less than wall time (both are recorded).

Tracing options, each on top of the writer's init in the same kind of process:
`platform` (the shipped choice: Lambda's active tracing, no SDK in the bundle), `xray_sdk`
(Powertools' Tracer with the AWS X-Ray SDK, as before), `otel` (an OpenTelemetry SDK set-up for
X-Ray: tracer provider, X-Ray id generator and propagator, batch span processor, OTLP/HTTP
exporter). The SDKs come from the bench dependency group, symlinked next to the bundle.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path

from benchmarks.common import (
    LOCAL_AWS,
    NO_NETWORK_ENDPOINT,
    QUIET_POWERTOOLS,
    alternating_rounds,
    aws_endpoint,
    spread_percent,
)
from benchmarks.results_file import BenchmarkResult, Goal
from orderpipe_common.settings import CassandraSettings, PowertoolsSettings
from orderpipe_ingest.settings import IngestSettings
from orderpipe_reader.settings import ReaderSettings

GOAL_RATIO = 1.3

_TIMER = """
import json, time
_cpu, _wall = time.process_time(), time.perf_counter()
{body}
print(json.dumps({{"cpu_ms": (time.process_time() - _cpu) * 1000, "wall_ms": (time.perf_counter() - _wall) * 1000}}))
"""

FUNCTIONS: dict[str, dict[str, str]] = {
    "ingest": {
        "init": (
            "from orderpipe_ingest import handler, publisher, idempotency\n"
            "from orderpipe_common.deadlines import Deadline\n"
            "publisher.sqs_client_for(Deadline.after(10))\n"  # the SQS client, created on first use
            "idempotency._idempotent()\n"  # Powertools' idempotency utility and its persistence layer
            "idempotency._dynamodb_client(Deadline.after(10))\n"  # the idempotency table's DynamoDB client
        ),
        "baseline": "import boto3\nboto3.client('sqs')\nboto3.client('dynamodb')\n",
    },
    "writer": {
        "init": "from orderpipe_writer import handler\nhandler.get_store()\n",
        "baseline": "import cassandra.cluster\nimport cassandra.concurrent\n",
    },
    "reader": {
        "init": (
            "from orderpipe_reader import handler, cache\n"
            "from orderpipe_common.deadlines import Deadline\n"
            "handler.get_cache(); handler.get_source(); cache.client_within('dynamodb', Deadline.after(10), cap_seconds=1)\n"
        ),
        "baseline": "import boto3\nimport cassandra.cluster\nboto3.client('dynamodb')\n",
    },
}
# Each function's own variables beside the shared ones (nothing is reached: the discard port).
FUNCTION_ENV: dict[str, dict[str, str]] = {
    "ingest": IngestSettings.environment(
        orders_queue_url=f"{NO_NETWORK_ENDPOINT}/000000000000/q", idempotency_table_name="t"
    ),
    "writer": {},
    "reader": ReaderSettings.environment(cache_table_name="t"),
}

# What the Lambda runtime provides beside the bundle (the bundling leaves these out).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six")

TRACING_OPTIONS: dict[str, dict[str, object]] = {
    "platform": {"code": "", "distributions": ()},
    "xray_sdk": {
        "code": "from aws_lambda_powertools import Tracer\nTracer()\n",
        "distributions": ("aws-xray-sdk",),
    },
    "otel": {
        "code": (
            "from opentelemetry import trace\n"
            "from opentelemetry.sdk.resources import Resource\n"
            "from opentelemetry.sdk.trace import TracerProvider\n"
            "from opentelemetry.sdk.trace.export import BatchSpanProcessor\n"
            "from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator\n"
            "from opentelemetry.propagators.aws import AwsXRayPropagator\n"
            "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter\n"
            "provider = TracerProvider(resource=Resource.create({'service.name': 'writer'}),"
            " id_generator=AwsXRayIdGenerator())\n"
            "provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint='http://127.0.0.1:9/v1/traces')))\n"
            "trace.set_tracer_provider(provider)\n"
            "AwsXRayPropagator()\n"
            "trace.get_tracer('orderpipe')\n"
        ),
        "distributions": (
            "opentelemetry-api",
            "opentelemetry-sdk",
            "opentelemetry-semantic-conventions",
            "opentelemetry-exporter-otlp-proto-http",
            "opentelemetry-exporter-otlp-proto-common",
            "opentelemetry-proto",
            "opentelemetry-propagator-aws-xray",
            "opentelemetry-sdk-extension-aws",
            "protobuf",
            "googleapis-common-protos",
            "requests",
            "charset-normalizer",
            "idna",
            "certifi",
        ),
    },
}


def runtime_python() -> str:
    """The Lambda runtime's Python (3.12): the interpreter the bundles are built and compiled with."""
    from stacks.bundling import runtime_python as bundling_python

    return str(Path(bundling_python()).resolve())


def link_distributions(names: Iterable[str], target: Path) -> list[str]:
    """Symlink these installed distributions (their top-level modules and metadata) into `target`.

    Returns the names that are not installed (their option is then skipped)."""
    target.mkdir(parents=True, exist_ok=True)
    missing = []
    for name in names:
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        root = Path(str(distribution.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in distribution.files or [] if not str(f).startswith("..")}
        for top in tops:
            source, link = root / top, target / top
            if top.endswith(".pth") or top == "__pycache__" or link.exists() or not source.exists():
                continue
            link.symlink_to(source)
    return missing


def build_bundles(root: Path, names: Iterable[str]) -> dict[str, Path]:
    from stacks.bundling import build_bundle

    bundles = {}
    for name in names:
        bundles[name] = root / name
        build_bundle(name, bundles[name], python=runtime_python())
    return bundles


def _child(code: str, env: dict[str, str], path: list[Path]) -> dict[str, float]:
    done = subprocess.run(
        [runtime_python(), "-S", "-c", _TIMER.format(body=code)],
        env={**env, "PYTHONPATH": os.pathsep.join(str(p) for p in path)},
        cwd=path[0],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed: {done.stderr[-2000:]}")
    values: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return values


def _measure(
    variants: Mapping[str, Callable[[], dict[str, float]]], rounds: int
) -> tuple[dict[str, float], dict[str, float], dict[str, list[float]]]:
    """Median CPU and wall ms per variant (alternating rounds, after one warm-up run each)."""
    walls: dict[str, list[float]] = {name: [] for name in variants}

    def cpu_of(name: str, run: Callable[[], dict[str, float]]) -> Callable[[], float]:
        def measure() -> float:
            sample = run()
            walls[name].append(sample["wall_ms"])
            return sample["cpu_ms"]

        return measure

    for run in variants.values():  # page cache warm, as on a warm Lambda host
        run()
    cpu = alternating_rounds({name: cpu_of(name, run) for name, run in variants.items()}, rounds)
    return (
        {name: statistics.median(values) for name, values in cpu.items()},
        {name: statistics.median(values) for name, values in walls.items()},
        cpu,
    )


def run(*, rounds: int = 7, progress: Callable[[str], None] = print) -> BenchmarkResult:
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        **QUIET_POWERTOOLS,
        **LOCAL_AWS,
        **aws_endpoint(NO_NETWORK_ENDPOINT),  # discard port: no network
        **CassandraSettings.environment(
            cassandra_contact_points=["127.0.0.1"],
            cassandra_port=9,
            cassandra_local_dc="datacenter1",
            cassandra_keyspace="orderpipe",
        ),
    }
    work = Path(tempfile.mkdtemp(prefix="orderpipe-cold-init-"))
    try:
        progress("building the function bundles (cached after the first build)")
        bundles = build_bundles(work / "bundles", FUNCTIONS)
        runtime = work / "runtime"
        link_distributions(RUNTIME_PROVIDED, runtime)
        figures: dict[str, object] = {"python": runtime_python(), "rounds": rounds, "timer": "process_time"}
        ratios: dict[str, float] = {}
        for name, spec in FUNCTIONS.items():
            env = {
                **base_env,
                **PowertoolsSettings.environment(powertools_service_name=name),
                **FUNCTION_ENV[name],
            }
            path = [bundles[name], runtime]
            variants = {
                "function": functools.partial(_child, spec["init"], env, path),
                "libraries": functools.partial(_child, spec["baseline"], env, path),
            }
            cpu, wall, samples = _measure(variants, rounds)
            progress(
                f"cold_init {name}: {cpu['function']:.0f} ms CPU vs libraries {cpu['libraries']:.0f} ms "
                f"(wall {wall['function']:.0f} vs {wall['libraries']:.0f} ms)"
            )
            figures[f"{name}_init_cpu_ms"] = round(cpu["function"], 1)
            figures[f"{name}_libraries_cpu_ms"] = round(cpu["libraries"], 1)
            figures[f"{name}_init_wall_ms"] = round(wall["function"], 1)
            figures[f"{name}_libraries_wall_ms"] = round(wall["libraries"], 1)
            figures[f"{name}_samples_cpu_ms"] = {
                k: [round(v, 1) for v in vals] for k, vals in samples.items()
            }
            figures[f"{name}_spread_percent"] = {k: spread_percent(vals) for k, vals in samples.items()}
            ratios[f"{name}_init_vs_libraries"] = cpu["function"] / cpu["libraries"]
        figures["tracing_options_on_writer"] = _tracing_options(
            bundles["writer"], runtime, work / "tracing", base_env, rounds, progress
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BenchmarkResult(
        benchmark="cold_init",
        figures=figures,
        ratios=ratios,
        goals=[Goal(name, GOAL_RATIO, "at_most") for name in ratios],
        notes=[
            "Each function's real bundle (stacks.bundling.build_bundle) + the runtime's boto3, fresh "
            "`python3.12 -S` per sample, nothing of the development environment on the path.",
            "Timed inside the child around the imports and client creation; ratio on CPU time "
            "(process_time), wall time recorded beside it.",
            "Baselines: ingest = boto3 + SQS and DynamoDB clients; writer = cassandra-driver; reader = "
            "boto3 + DynamoDB client + cassandra-driver. The ingest's init includes its idempotency "
            "layer's DynamoDB client.",
            "tracing_options_on_writer: the writer's init plus each tracing set-up, same process kind; "
            "'platform' is what ships (no SDK). A lazily loaded tracer moves the same SDK import to the "
            "first traced invocation: it only helps where tracing stays off.",
        ],
    )


def _tracing_options(
    writer_bundle: Path,
    runtime: Path,
    work: Path,
    base_env: dict[str, str],
    rounds: int,
    progress: Callable[[str], None],
) -> dict[str, object]:
    env = {
        **base_env,
        # As in Lambda with active tracing: Powertools' Tracer is on and patches the AWS SDK.
        **PowertoolsSettings.environment(powertools_service_name="writer", powertools_trace_disabled=False),
        "AWS_LAMBDA_FUNCTION_NAME": "writer",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    }
    init = FUNCTIONS["writer"]["init"]
    variants: dict[str, Callable[[], dict[str, float]]] = {}
    skipped = {}
    for option, spec in TRACING_OPTIONS.items():
        extra = work / option
        missing = link_distributions(spec["distributions"], extra)  # type: ignore[arg-type]
        if missing:
            skipped[option] = f"not installed: {', '.join(missing)}"
            continue
        variants[option] = functools.partial(
            _child, init + str(spec["code"]), env, [writer_bundle, runtime, extra]
        )
    cpu, wall, samples = _measure(variants, rounds)
    result: dict[str, object] = {
        option: {
            "cpu_ms": round(cpu[option], 1),
            "wall_ms": round(wall[option], 1),
            "added_cpu_ms": round(cpu[option] - cpu["platform"], 1),
            "spread_percent": spread_percent(samples[option]),
        }
        for option in variants
    }
    if skipped:
        result["skipped"] = skipped
    progress("tracing options on the writer: " + ", ".join(f"{o} {cpu[o]:.0f} ms" for o in variants))
    return result
