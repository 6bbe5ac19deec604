"""`submit FILE`: import a file of orders through the client, with a progress bar; resumable.

`register(subparsers)` adds the command to any argparse command line (it sets `handler`, a function
taking the parsed arguments and returning the exit code); `main()` is a command line of its own
(`python -m orderpipe_client submit ...`). Heavy imports wait for the handler so `--help` is instant.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Where the `orderpipe` command line lists this command (orderpipe_ops.cli.AUDIENCES).
AUDIENCE = "producer"

EXIT_OK = 0
EXIT_REFUSED = 1  # some line was rejected, or is not accepted yet (failed): see the outcome file
EXIT_USAGE = 2  # bad arguments, credentials refused, an outcome file of another import
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Submit every order of FILE (JSON Lines: one order per line; or CSV: one line item per row, grouped
by an order_ref column) through POST /orders/batch, with retries and deterministic Idempotency-Keys,
and record each line's outcome in an outcome file (JSON Lines: the line's accepted order_id, or the
field errors that refused it).

Resumable: interrupted (Ctrl-C, kill, a crash) and run again with the same outcome file, it skips
the lines already settled and re-sends the ones in flight exactly as before, so every line is
stored once. Exit status: 0 when every line was accepted, 1 when some line was refused or is still
not accepted (run again to retry those), 2 for bad arguments or credentials, 130 when interrupted.
"""

EPILOG = """\
examples:
  # the local pipeline of a running `orderpipe run` (found through its state file)
  %(prog)s orders.jsonl

  # any API (jwt mode): its URL, and a producer's OAuth 2.0 client credentials in the environment
  # (ORDERPIPE_TOKEN_URL, ORDERPIPE_CLIENT_ID, ORDERPIPE_CLIENT_SECRET, as `orderpipe producers add`
  # and `orderpipe run` print them)
  %(prog)s orders.jsonl --url https://api.example.com/prod

  # at most 200 orders/s, 8 requests in flight, outcomes in a chosen file
  %(prog)s orders.jsonl --url https://api.example.com/prod \\
      --rate 200 --concurrency 8 --outcome orders.outcome.jsonl

  # the client credentials as options (the secret still from the environment: options show in `ps`)
  ORDERPIPE_CLIENT_SECRET=... %(prog)s orders.csv --url https://api.example.com/prod \\
      --token-url https://auth.example.com/oauth2/token --client-id ID --scope orders/write

  # iam mode: SigV4 with botocore's credentials (AWS_PROFILE, ...), plus the usage-plan key
  %(prog)s orders.jsonl --url https://abc123.execute-api.eu-west-1.amazonaws.com/prod \\
      --sigv4-region eu-west-1 --api-key KEY

  # the refusals afterwards
  jq -c 'select(.status == "rejected")' orders.jsonl.outcome.jsonl

CSV columns: order_ref, customer_id, currency, sku, quantity, unit_price (required); client_reference
(default: order_ref), ship_name, ship_line1, ship_line2, ship_city, ship_region, ship_postal_code,
ship_country (optional). Rows of one order must be contiguous.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `submit` to an argparse subparsers object; the parsed arguments' `handler(args)` runs it."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "submit",
        help="import a JSON Lines or CSV file of orders (resumable, with an outcome file)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", metavar="FILE", type=Path, help="JSON Lines (.jsonl) or CSV (.csv) file of orders"
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("ORDERPIPE_URL"),
        help="the API's base URL, with the stage on API Gateway (default: $ORDERPIPE_URL)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ORDERPIPE_API_KEY"),
        help="the usage-plan key, sent as x-api-key alongside SigV4 in iam mode (default: $ORDERPIPE_API_KEY)",
    )
    oauth = parser.add_argument_group("OAuth 2.0 client credentials (bearer token)")
    oauth.add_argument(
        "--token-url",
        default=os.environ.get("ORDERPIPE_TOKEN_URL"),
        help="the token endpoint; with --client-id, sends a bearer token (default: $ORDERPIPE_TOKEN_URL)",
    )
    oauth.add_argument(
        "--client-id", default=os.environ.get("ORDERPIPE_CLIENT_ID"), help="(default: $ORDERPIPE_CLIENT_ID)"
    )
    oauth.add_argument(
        "--client-secret",
        default=os.environ.get("ORDERPIPE_CLIENT_SECRET"),
        help="(default: $ORDERPIPE_CLIENT_SECRET; prefer the variable: arguments show in process lists)",
    )
    oauth.add_argument("--scope", action="append", default=[], help="a scope to request (repeatable)")
    parser.add_argument(
        "--sigv4-region", metavar="REGION", help="sign requests with AWS SigV4 (IAM auth) for this region"
    )
    parser.add_argument("--rate", type=float, help="orders per second at most (default: as fast as it goes)")
    parser.add_argument("--concurrency", type=int, default=4, help="batch requests in flight (default: 4)")
    parser.add_argument(
        "--batch-size", type=int, default=100, help="orders per request, 1-100 (default: 100)"
    )
    parser.add_argument(
        "--outcome",
        type=Path,
        metavar="PATH",
        help="the outcome file (default: FILE.outcome.jsonl); reuse it to resume",
    )
    parser.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        dest="source_format",
        help="the file's format (default: by extension)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default: 30)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=120.0,
        help="seconds a batch may spend retrying before its orders count as failed (default: 120)",
    )
    parser.add_argument(
        "--key-namespace",
        default=os.environ.get("ORDERPIPE_KEY_NAMESPACE", ""),
        help="mixed into every Idempotency-Key; keep it the same across runs of one import "
        "(default: $ORDERPIPE_KEY_NAMESPACE or none)",
    )
    parser.set_defaults(handler=run_submit, sigv4_keys=None)  # sigv4_keys: the local pipeline's, in iam mode
    return parser


def run_submit(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    _default_to_the_local_pipeline(args, console)
    problem = _check_arguments(args)
    if problem:
        console.print(f"[red]{problem}[/red]")
        return EXIT_USAGE
    import httpx

    from orderpipe_client.auth import BearerTokenAuth, ClientCredentialsTokenProvider, SigV4Auth
    from orderpipe_client.bulk import OutcomeFileError, SourceFormatError, default_outcome_path, import_file
    from orderpipe_client.client import OrderpipeClient
    from orderpipe_client.errors import AuthenticationError, TokenRequestError, UnexpectedResponseError
    from orderpipe_client.retry import RetryPolicy

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # httpx logs every request at INFO: thousands of lines under the progress bar.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    auths: list[httpx.Auth] = []
    if args.token_url:
        provider = ClientCredentialsTokenProvider(
            args.token_url, args.client_id, args.client_secret or "", scopes=args.scope
        )
        auths.append(BearerTokenAuth(provider))
    if args.sigv4_region:
        keys = args.sigv4_keys  # the local pipeline's IAM access key; else botocore's chain
        if keys:
            from botocore.credentials import Credentials

            auths.append(SigV4Auth(args.sigv4_region, credentials=Credentials(*keys)))
        else:
            auths.append(SigV4Auth(args.sigv4_region))
    outcome_path = args.outcome or default_outcome_path(args.file)
    client = OrderpipeClient(
        args.url,
        api_key=args.api_key,
        auth=auths,
        timeout=httpx.Timeout(args.timeout, connect=min(5.0, args.timeout)),
        retry=RetryPolicy(deadline=args.deadline),
        max_connections=args.concurrency,
        key_namespace=args.key_namespace,
    )
    bar = _ProgressBar(console, args.file.name)
    try:
        with client, bar:
            result = import_file(
                args.file,
                client,
                outcome_path=outcome_path,
                rate=args.rate,
                concurrency=args.concurrency,
                batch_size=args.batch_size,
                source_format=args.source_format,
                progress=bar.update,
            )
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted.[/yellow] Run the same command again (same --outcome {outcome_path}) to "
            "resume: settled lines are skipped, lines in flight are re-sent with their keys."
        )
        return EXIT_INTERRUPTED
    except (OutcomeFileError, SourceFormatError, AuthenticationError, TokenRequestError) as error:
        console.print(f"[red]{error}[/red]")
        return EXIT_USAGE
    except UnexpectedResponseError as error:
        console.print(f"[red]{error}[/red] (resumable: run the same command again)")
        return EXIT_REFUSED
    _print_summary(console, result)
    return EXIT_OK if result.ok else EXIT_REFUSED


def _default_to_the_local_pipeline(args: argparse.Namespace, console: Any) -> None:
    """No URL given: the local pipeline of a running `orderpipe run`, when orderpipe-ops is installed
    alongside (it owns the state file that says where that pipeline listens)."""
    if args.url:
        return
    try:
        from orderpipe_ops import local_pipeline
    except ImportError:
        return
    pipeline = local_pipeline.read()
    if pipeline is None:
        return
    args.url = pipeline.api_url
    if not (args.api_key or args.token_url or args.sigv4_region):
        # The local producer's: client credentials (jwt mode, the default), or its IAM access key and
        # usage-plan key (`orderpipe run --auth iam`).
        local = pipeline.producer()
        args.token_url, args.client_id, args.client_secret = (
            local.token_url,
            local.client_id,
            local.client_secret,
        )
        args.api_key = local.api_key
        if local.iam:
            args.sigv4_region = local.region
            args.sigv4_keys = (local.access_key_id, local.secret_access_key)
    console.print(f"pipeline: {pipeline.description}", highlight=False, markup=False)


def _check_arguments(args: argparse.Namespace) -> str | None:
    if not args.url:
        return "no API URL: pass --url or set ORDERPIPE_URL (or start a local pipeline with `orderpipe run`)"
    if not args.url.startswith(("http://", "https://")):
        return f"--url must start with http:// or https://, not {args.url!r}"
    if not args.file.is_file():
        return f"no such file: {args.file}"
    if args.token_url and not (args.client_id and args.client_secret):
        return (
            "--token-url needs --client-id and a client secret (--client-secret or $ORDERPIPE_CLIENT_SECRET)"
        )
    if not (args.api_key or args.token_url or args.sigv4_region):
        return (
            "no credentials: pass --token-url and --client-id (or set ORDERPIPE_TOKEN_URL, ORDERPIPE_CLIENT_ID, "
            "ORDERPIPE_CLIENT_SECRET), or --sigv4-region with --api-key in iam mode"
        )
    if not 1 <= args.batch_size <= 100:
        return "--batch-size must be 1 to 100"
    if args.concurrency < 1:
        return "--concurrency must be at least 1"
    if args.rate is not None and args.rate <= 0:
        return "--rate must be positive"
    if args.timeout <= 0 or args.deadline <= 0:
        return "--timeout and --deadline must be positive"
    return None


class _ProgressBar:
    """A rich bar over the file's orders: accepted, rejected, failed, skipped (settled by an earlier run)."""

    def __init__(self, console: Any, name: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn(f"[bold]{name}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
            console=console,
        )
        self._task = self._progress.add_task("submit", total=None, line="reading")

    def update(self, progress: Any) -> None:
        rate = (progress.done - progress.skipped) / progress.elapsed if progress.elapsed > 0 else 0.0
        line = (
            f"accepted {progress.accepted:,}  rejected {progress.rejected:,}  failed {progress.failed:,}"
            + (f"  (skipped {progress.skipped:,} settled before)" if progress.skipped else "")
            + f"  {rate:,.0f}/s"
        )
        self._progress.update(self._task, total=progress.total, completed=progress.done, line=line)

    def __enter__(self) -> _ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()


def _print_summary(console: Any, result: Any) -> None:
    from rich.table import Table

    from orderpipe_client.bulk import iter_refusals

    table = Table(title="import", show_header=False)
    table.add_column("what")
    table.add_column("orders", justify="right")
    table.add_row("in the file", f"{result.total:,}")
    table.add_row("accepted", f"{result.accepted:,}")
    table.add_row("rejected", f"{result.rejected:,}")
    table.add_row("not accepted yet (failed)", f"{result.failed:,}")
    if result.skipped:
        table.add_row("settled by an earlier run", f"{result.skipped:,}")
    console.print(table)
    refusals = list(iter_refusals(result.outcome_path))
    for record in refusals[:5]:
        errors = "; ".join(f"{error['field']}: {error['message']}" for error in record.get("errors", []))
        console.print(f"  line {record['line']}: {errors}")
    if len(refusals) > 5:
        console.print(f"  ... and {len(refusals) - 5} more")
    console.print(f"outcomes: {result.outcome_path}")
    if result.failed:
        console.print(
            "[yellow]some orders were not accepted yet: run the same command again to retry them[/yellow]"
        )


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="The orderpipe producer client's command line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each retry")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
