"""Cold init of each function: a fresh process with the runtime's Python, no network, importing the
handler module and creating its clients, against importing only the function's unavoidable
libraries (boto3 + its clients; cassandra-driver where used) in an equally fresh process.

Both sides are timed inside the child (perf_counter around the imports), so interpreter start-up,
common to both, is left out; the median of alternating runs counts. AWS_ENDPOINT_URL points at a
closed loopback port: nothing may (or does) touch the network during init.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable

from benchmarks.common import LOCAL_AWS, QUIET_POWERTOOLS, alternating_rounds, medians, spread_percent
from benchmarks.results_file import BenchmarkResult, Goal

_TIMER = """
import time, json
_started = time.perf_counter()
{body}
print(json.dumps({{"ms": (time.perf_counter() - _started) * 1000}}))
"""

FUNCTIONS: dict[str, dict[str, str]] = {
    "ingest": {
        "init": (
            "from orderpipe_ingest import handler, publisher\n"
            "from orderpipe_common.deadlines import Deadline\n"
            "publisher.sqs_client_for(Deadline.after(10))\n"  # the SQS client, created on first use
        ),
        "baseline": "import boto3\nboto3.client('sqs')\nboto3.client('dynamodb')\n",
        "env": "ORDERS_QUEUE_URL=http://127.0.0.1:9/000000000000/q IDEMPOTENCY_TABLE_NAME=t",
    },
    "writer": {
        "init": "from orderpipe_writer import handler\nhandler.get_store()\n",
        "baseline": "import cassandra.cluster\nimport cassandra.concurrent\n",
        "env": "",
    },
    "reader": {
        "init": (
            "from orderpipe_reader import handler, cache\n"
            "from orderpipe_common.deadlines import Deadline\n"
            "handler.get_cache(); handler.get_source(); cache.client_within('dynamodb', Deadline.after(10), cap_seconds=1)\n"
        ),
        "baseline": "import boto3\nimport cassandra.cluster\nboto3.client('dynamodb')\n",
        "env": "CACHE_TABLE_NAME=t",
    },
}


def runtime_python() -> str:
    """The Lambda runtime's Python (3.12) with the project's packages: the venv's interpreter."""
    return sys.executable


def _child_ms(code: str, env: dict[str, str]) -> float:
    done = subprocess.run(
        [runtime_python(), "-c", _TIMER.format(body=code)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["ms"])


def run(*, rounds: int = 7, progress: Callable[[str], None] = print) -> BenchmarkResult:
    base_env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "CASSANDRA_", "POWERTOOLS_")) and k != "PYTHONDONTWRITEBYTECODE"
        },
        **QUIET_POWERTOOLS,
        **LOCAL_AWS,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # discard port: no network
        "CASSANDRA_CONTACT_POINTS": "127.0.0.1",
        "CASSANDRA_PORT": "9",
        "CASSANDRA_LOCAL_DC": "datacenter1",
        "CASSANDRA_KEYSPACE": "orderpipe",
    }
    figures: dict[str, object] = {"python": runtime_python(), "rounds": rounds}
    ratios: dict[str, float] = {}
    for name, spec in FUNCTIONS.items():
        env = {**base_env, "POWERTOOLS_SERVICE_NAME": name}
        env.update(dict(pair.split("=", 1) for pair in spec["env"].split()))
        variants: dict[str, Callable[[], float]] = {
            "function": functools.partial(_child_ms, spec["init"], env),
            "libraries": functools.partial(_child_ms, spec["baseline"], env),
        }
        # Warm the OS page cache and write .pyc files first: a Lambda bundle ships compiled
        # bytecode (pip compiles on install), so compiling sources must not count.
        for variant in variants.values():
            variant()
        samples = alternating_rounds(variants, rounds)
        median = medians(samples)
        progress(f"cold_init {name}: {median['function']:.0f} ms vs libraries {median['libraries']:.0f} ms")
        figures[f"{name}_init_ms"] = round(median["function"], 1)
        figures[f"{name}_libraries_ms"] = round(median["libraries"], 1)
        figures[f"{name}_samples_ms"] = {k: [round(v, 1) for v in vals] for k, vals in samples.items()}
        figures[f"{name}_spread_percent"] = {k: spread_percent(vals) for k, vals in samples.items()}
        ratios[f"{name}_init_vs_libraries"] = median["function"] / median["libraries"]
    return BenchmarkResult(
        benchmark="cold_init",
        figures=figures,
        ratios=ratios,
        goals=[Goal(name, 1.5, "at_most") for name in ratios],
        notes=[
            "Fresh child process per sample, timed inside the child around the imports and client "
            "creation (interpreter start-up excluded on both sides).",
            "Baselines: ingest = boto3 + SQS and DynamoDB clients (idempotency); writer = "
            "cassandra-driver; reader = boto3 + DynamoDB client + cassandra-driver.",
        ],
    )
