"""`orderpipe run`: the whole pipeline on this machine (the README's run command)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

AUDIENCE = "developer"  # who this command is for (orderpipe_ops.cli groups --help by it)
DEFAULT_PORT = 8080


def pasteable_orderpipe() -> str:
    """This `orderpipe` as a shell in the current directory runs it: the running executable's path
    relative to the directory when inside it (`.venv/bin/orderpipe` from the repository root), else
    absolute. A bare `orderpipe` is on PATH only where the virtual environment is activated."""
    executable = Path(os.path.abspath(sys.argv[0]))
    if executable.name != "orderpipe":  # not the console script (python -m ...): the one beside Python
        executable = Path(sys.executable).with_name("orderpipe")
    try:
        relative = executable.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(executable))
    return shlex.quote(str(relative) if relative.parent != Path(".") else f"./{relative}")


def _tuning_override(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def register(subparsers: Any) -> None:
    from orderpipe_common.tuning import TUNING_PROFILES  # light: dataclasses only

    parser = subparsers.add_parser(
        "run",
        help="run the whole pipeline locally (API, queue, writer, reader, Cassandra)",
        description=(
            "Run the whole pipeline on this machine: Cassandra (an existing cluster from "
            "CASSANDRA_CONTACT_POINTS, else a container where Docker runs, else the embedded node), "
            "ElasticMQ for SQS and moto server for DynamoDB (unless AWS_ENDPOINT_URL names another "
            "endpoint; --sqs moto puts SQS on moto too), the "
            "real ingest/reader handlers behind an API Gateway emulator, and the real writer behind "
            "an SQS event-source emulator. Ctrl-C stops everything."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the API listens on (loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="API port (0 picks a free one)")
    parser.add_argument(
        "--auth",
        choices=["jwt", "iam"],
        default="jwt",
        help="how producers authenticate, as orderpipe:auth deployed: OAuth 2.0 tokens from a local issuer "
        "checked by the real authorizer (jwt), or SigV4 signatures (iam)",
    )
    parser.add_argument("--keyspace", default="orderpipe", help="Cassandra keyspace")
    parser.add_argument(
        "--tuning-profile",
        choices=sorted(TUNING_PROFILES),
        default="default",
        help="pipeline tuning to start from (low_latency: no batching window, batches of 10)",
    )
    parser.add_argument(
        "--tuning",
        metavar="NAME=VALUE",
        type=_tuning_override,
        action="append",
        default=[],
        help="override a pipeline setting shared with the stack, e.g. writer_batch_size=50 (repeatable)",
    )
    parser.add_argument(
        "--ingest-concurrency",
        type=int,
        default=4,
        help="ingest execution environments (Lambda scales them; 2 capped single POSTs near 130/s here)",
    )
    parser.add_argument("--reader-concurrency", type=int, default=2, help="reader execution environments")
    parser.add_argument(
        "--cassandra-source",
        choices=["environment", "container", "embedded"],
        help="force where Cassandra comes from (default: the first that is available)",
    )
    parser.add_argument(
        "--cassandra-tls",
        action="store_true",
        help=(
            "start the embedded node with TLS only (certificates made with keytool) and password "
            "authentication; the functions connect as a non-superuser role, verifying the CA and the "
            "node's IP (CASSANDRA_TLS_HOSTNAME_CHECK=ip_san)"
        ),
    )
    parser.add_argument(
        "--sqs",
        choices=["elasticmq", "moto"],
        default="elasticmq",
        help="SQS server when AWS_ENDPOINT_URL is not set (moto slows down as the queue fills)",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="put Toxiproxy between the functions and Cassandra, SQS and DynamoDB, so that network "
        "faults can be injected by hand (`orderpipe fault add cassandra black-hole`, ...)",
    )
    parser.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    parser.add_argument("--quiet-requests", action="store_true", help="don't log one line per request/batch")
    parser.set_defaults(handler=run)


def _stop_on_ctrl_c_or_sigterm() -> threading.Event:
    """An event set by Ctrl-C (SIGINT) or SIGTERM.

    Installed explicitly: a process started in the background by a non-interactive shell (a CI job,
    a supervisor) inherits SIGINT as ignored, and Python keeps it ignored, so Ctrl-C would do nothing.
    """
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)
    return stop


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import logging
    from contextlib import ExitStack

    from rich.console import Console

    from orderpipe_common.tuning import tuning_profile
    from orderpipe_devenv.aws.endpoints import local_aws
    from orderpipe_devenv.cassandra.source import CassandraUnavailableError, provide_cassandra
    from orderpipe_devenv.processes import free_port
    from orderpipe_devenv.runtime.pipeline import LocalRuntime, RuntimeConfig
    from orderpipe_ops import local_pipeline

    console = Console(stderr=True)
    if args.quiet_requests:
        for name in ("orderpipe.gateway", "orderpipe.event_source"):
            logging.getLogger(name).setLevel(logging.WARNING)
    tuning = tuning_profile(args.tuning_profile).with_overrides(dict(args.tuning))
    with ExitStack() as stack:
        try:
            cassandra = stack.enter_context(
                provide_cassandra(args.cassandra_source, secured=args.cassandra_tls)
            )
        except CassandraUnavailableError as error:
            console.print(f"[red]No Cassandra:[/red] {error}")
            return 2
        aws_endpoint = os.environ.get("AWS_ENDPOINT_URL")
        sqs_endpoint = os.environ.get("AWS_ENDPOINT_URL_SQS")
        if not aws_endpoint:
            with console.status(f"starting moto server (DynamoDB) and {args.sqs} (SQS)"):
                aws = stack.enter_context(local_aws(args.sqs))
            aws_endpoint, sqs_endpoint = aws.endpoint_url, aws.sqs_endpoint_url
        faults = None
        if args.faults:
            from orderpipe_devenv.toxiproxy import ToxiproxyUnavailableError

            try:
                with console.status("starting Toxiproxy and its proxies"):
                    faults = _start_faults(stack, cassandra.endpoint, aws_endpoint, sqs_endpoint)
            except ToxiproxyUnavailableError as error:
                console.print(f"[red]No Toxiproxy:[/red] {error} (`make setup` builds it)")
                return 2
        config = RuntimeConfig(
            host=args.host,
            port=args.port or free_port(args.host),
            keyspace=args.keyspace,
            tuning=tuning,
            ingest_concurrency=args.ingest_concurrency,
            reader_concurrency=args.reader_concurrency,
            auth=args.auth,
        )
        with console.status("creating queues and tables, applying the schema, starting the functions"):
            runtime = stack.enter_context(
                LocalRuntime(
                    config,
                    cassandra_env=cassandra.endpoint.settings_env(args.keyspace),
                    aws_endpoint_url=aws_endpoint,
                    sqs_endpoint_url=sqs_endpoint,
                    network_env=faults.function_env() if faults else None,
                )
            )
        # The producer whose credentials the banner prints (and the state file records).
        producer = runtime.default_producer()
        # Where its parts listen, for the operator tools, `orderpipe load` and `orderpipe submit`.
        pipeline = runtime.describe(cassandra_source=cassandra.endpoint.source)
        if faults is not None:
            pipeline = dataclasses.replace(pipeline, toxiproxy_url=faults.client.api_url)
        state_file = local_pipeline.write(pipeline)
        stack.callback(local_pipeline.remove, pipeline.pid, state_file)
        _print_banner(console, runtime, cassandra.endpoint.source, state_file, producer)
        if faults is not None:
            _print_faults(console, faults)
        # From here on Ctrl-C means "stop cleanly" (during start-up it interrupts as usual).
        stop = _stop_on_ctrl_c_or_sigterm()
        stop.wait(args.duration)
        console.print("stopping: API, event source, functions, moto, Cassandra ...")
    console.print("stopped.")
    return 0


# A shell command that takes the client secret from the environment (it holds none).
TOKEN_COMMAND = (
    'TOKEN=$(curl -s -u "$ORDERPIPE_CLIENT_ID:$ORDERPIPE_CLIENT_SECRET" -d grant_type=client_credentials '  # noqa: S105
    '"$ORDERPIPE_TOKEN_URL" | python3 -c \'import json,sys; print(json.load(sys.stdin)["access_token"])\')'
)


def _start_faults(stack: Any, endpoint: Any, aws_endpoint: str, sqs_endpoint: str | None) -> Any:
    """Toxiproxy (stopped with everything else) and a proxy in front of each dependency."""
    from orderpipe_devenv.runtime.faults import FaultProxies
    from orderpipe_devenv.toxiproxy import ToxiproxyServer

    toxiproxy = stack.enter_context(ToxiproxyServer())
    faults = FaultProxies.between(
        toxiproxy.client,
        cassandra_hosts=list(endpoint.contact_points),
        cassandra_port=endpoint.port,
        sqs_endpoint_url=sqs_endpoint or aws_endpoint,
        dynamodb_endpoint_url=aws_endpoint,
    )
    return faults


def _print_faults(console: Any, faults: Any) -> None:
    api = faults.client.api_url
    route = " ".join(f"{proxy.name} via {proxy.listen}" for proxy in faults.all)
    orderpipe = pasteable_orderpipe()
    lines = [
        f"Faults: the functions reach their dependencies through Toxiproxy ({api}): {route}",
        f"Inject one by hand, in another terminal (`{orderpipe} fault --help` lists them all):",
        f"  {orderpipe} fault add cassandra black-hole     # GET an order not read before: 503 + Retry-After within 3 s",
        f"  {orderpipe} fault add sqs latency --size 800   # POSTs still 202, 0.8 s slower",
        f"  {orderpipe} fault add dynamodb reset --for 20  # idempotency and cache connections reset for 20 s",
        f"  {orderpipe} fault list",
        f"  {orderpipe} fault clear",
        "or with Toxiproxy's own API:",
        f"""  curl -s -X POST {api}/proxies/{faults.cassandra[0].name}/toxics -d '{{"type": "latency", "attributes": {{"latency": 500}}}}'""",
        f"  curl -s -X POST {api}/reset",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def _print_banner(console: Any, runtime: Any, cassandra_source: str, state_file: Any, producer: Any) -> None:
    from rich.panel import Panel

    from orderpipe_common.settings import CassandraSettings
    from orderpipe_testkit.auth import ClientCredentialsAuth

    url = runtime.url
    tuning = runtime.config.tuning
    if producer.auth == "jwt":
        auth_line = (
            f"Auth:       jwt: tokens from {runtime.issuer.token_url} (client credentials), checked by the "
            f"authorizer; decisions cached {tuning.authorizer_cache_ttl_seconds} s\n"
        )
    else:
        auth_line = (
            "Auth:       iam: SigV4 signatures (service execute-api) + the usage-plan key as x-api-key\n"
        )
    # The variables the Cassandra node was given, by setting name.
    cassandra = CassandraSettings.from_environment(runtime.cassandra_env)
    console.print(
        Panel(
            f"[bold]orderpipe is running[/bold]\n"
            f"API:        {url}\n"
            f"API docs:   {url}/docs ({url}/openapi.json)\n"
            + auth_line
            + f"Producer:   {producer.name} ({producer.principal})\n"
            f"AWS:        {runtime.aws_endpoint_url}"
            + (f" (SQS: {runtime.sqs_endpoint_url})" if runtime.sqs_endpoint_url else "")
            + "\n"
            f"Cassandra:  {cassandra['cassandra_contact_points']}:{cassandra['cassandra_port']} "
            f"({cassandra_source}), keyspace {runtime.config.keyspace}"
            + (
                f", TLS (CA {cassandra['cassandra_tls_ca_file']}, {cassandra['cassandra_tls_hostname_check']})"
                if cassandra.get("cassandra_tls") == "true"
                else ""
            )
            + (f", as role {cassandra['cassandra_username']}" if cassandra.get("cassandra_username") else "")
            + "\n"
            f"Writer:     batch {tuning.writer_batch_size}, window {tuning.writer_batching_window_seconds} s, "
            f"concurrency {tuning.writer_max_concurrency}, visibility {tuning.visibility_timeout_seconds} s, "
            f"DLQ after {tuning.max_receive_count} receives",
            expand=False,
        )
    )
    sample = json.dumps(
        {
            "customer_id": "cust-42",
            "currency": "EUR",
            "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "19.99"}],
        }
    )
    # Plain, unwrapped lines so they paste into a shell as they are.
    if producer.auth == "jwt":
        token = ClientCredentialsAuth(producer.token_url, producer.client_id, producer.client_secret).token()
        credential = f"-H 'Authorization: Bearer {token}'"
        lines = [
            f"Credentials of producer {producer.name} (paste into a shell; `orderpipe load` reads them too):",
            f"  export ORDERPIPE_TOKEN_URL={producer.token_url} ORDERPIPE_CLIENT_ID={producer.client_id} "
            f"ORDERPIPE_CLIENT_SECRET={producer.client_secret}",
            "A new token (each is valid for an hour):",
            f"  {TOKEN_COMMAND}",
        ]
    else:
        credential = (
            f"--aws-sigv4 'aws:amz:us-east-1:execute-api' --user '{producer.access_key_id}:"
            f"{producer.secret_access_key}' -H 'x-api-key: {producer.api_key}'"
        )
        lines = [
            f"Credentials of producer {producer.name}: an IAM access key and its usage-plan key (below)."
        ]
    # Commands as they paste into a shell in this directory (the venv need not be activated); they find
    # this pipeline through the state file, so they need no endpoint, URL or credentials.
    orderpipe = pasteable_orderpipe()
    lines += [
        "POST an order (with a ready credential):",
        f"  curl -s -X POST {url}/orders {credential} -H 'content-type: application/json' -d '{sample}'",
        "GET it (put the order_id from the answer in place of ORDER_ID):",
        f"  curl -s {url}/orders/ORDER_ID {credential}",
        f"Operate it (these commands find this pipeline through {state_file}):",
        f"  {orderpipe} queue status                    # depths, oldest message, DLQ, against the alarms",
        f"  {orderpipe} dlq inspect                     # why messages failed, nothing consumed",
        f"  {orderpipe} load --rate 50 --duration 10    # load with a live progress bar and a report",
        f"  {orderpipe} submit orders.jsonl             # import a file of orders (resumable)",
        f"  {orderpipe} producers add NAME              # another producer (--read-all: reads everyone's orders)",
        "Ctrl-C stops everything.",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)
