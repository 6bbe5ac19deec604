"""`orderpipe load`: POST orders at a base URL and measure what comes back (a bounded run)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

AUDIENCE = "developer"  # who this command is for (orderpipe_ops.cli groups --help by it)
DEFAULT_REPORT = Path("load-report.json")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples kept as written, defaults shown."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "load",
        help="generate load against an orderpipe API and report latency, throughput and errors",
        description=(
            "POST orders (one per request, or batches) to BASE_URL at a target rate or a fixed "
            "concurrency, for a duration or a count; measure accept latency (p50/p90/p99/max), "
            "throughput, errors by status, and visibility latency (POST -> first GET 200) on a sample "
            "of orders it polls. Writes a JSON report and a PNG plot. Always stops by itself, and only "
            "talks to BASE_URL. Without BASE_URL it drives the local pipeline of a running `orderpipe "
            "run` (URL and credentials from its state file).\n\nexamples:\n"
            "  orderpipe load --rate 50 --duration 10          # the local pipeline\n"
            "  orderpipe load --count 5000 --batch-size 100    # batch POSTs, as fast as it goes\n"
            "  ORDERPIPE_CLIENT_SECRET=... orderpipe load https://abc.execute-api.eu-west-1.amazonaws.com/v1 "
            "--token-url https://orderpipe-123456789012.auth.eu-west-1.amazoncognito.com/oauth2/token "
            "--client-id ID --rate 20"
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument(
        "base_url",
        metavar="BASE_URL",
        nargs="?",
        help="the API's base URL, e.g. http://127.0.0.1:8080 (default: the running local pipeline's)",
    )
    auth = parser.add_argument_group(
        "authentication",
        "jwt mode (the default): --token-url with --client-id/--client-secret (client credentials; a new "
        "token is fetched before the current one expires), or a ready --token. iam mode: --sigv4 REGION "
        "(botocore's credential chain: AWS_PROFILE, SSO, role...) with --api-key (the usage-plan key). "
        "`orderpipe run` and `orderpipe producers add` print these values.",
    )
    auth.add_argument(
        "--token-url",
        default=os.environ.get("ORDERPIPE_TOKEN_URL"),
        help="OAuth 2.0 token endpoint (default: $ORDERPIPE_TOKEN_URL)",
    )
    auth.add_argument(
        "--client-id", default=os.environ.get("ORDERPIPE_CLIENT_ID"), help="(default: $ORDERPIPE_CLIENT_ID)"
    )
    auth.add_argument(
        "--client-secret",
        default=os.environ.get("ORDERPIPE_CLIENT_SECRET"),
        help="(default: $ORDERPIPE_CLIENT_SECRET; prefer the variable: arguments show in ps)",
    )
    auth.add_argument(
        "--scope", action="append", help="scope to ask for (repeatable; default: the client's own scopes)"
    )
    auth.add_argument(
        "--token",
        default=os.environ.get("ORDERPIPE_TOKEN"),
        help="a ready access token (default: $ORDERPIPE_TOKEN)",
    )
    auth.add_argument("--sigv4", metavar="REGION", help="iam mode: sign requests with SigV4 for this region")
    auth.add_argument(
        "--api-key",
        default=os.environ.get("ORDERPIPE_API_KEY"),
        help="sent as x-api-key: the usage-plan key in iam mode (default: $ORDERPIPE_API_KEY)",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="target rate in orders/s (open loop)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="requests in flight at most; without --rate the workers send back to back (closed loop)",
    )
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--duration", type=float, help="seconds to send for")
    bound.add_argument("--count", type=int, help="orders to send (rounded up to whole requests)")
    parser.add_argument(
        "--batch-size", type=int, default=1, help="orders per request: 1 posts /orders, more /orders/batch"
    )
    parser.add_argument("--profile", choices=["small", "mixed", "large"], default="mixed", help="order sizes")
    parser.add_argument(
        "--visibility-every",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="poll one accepted order this often until readable (0: no visibility sampling)",
    )
    parser.add_argument(
        "--visibility-timeout", type=float, default=30.0, help="give up on a sampled order after"
    )
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between GETs of a sample")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="JSON report path")
    parser.add_argument("--plot", type=Path, help="PNG plot path (default: the report's path with .png)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from orderpipe_testkit.loadgen import LoadConfig, run_load
    from orderpipe_testkit.loadgen.progress import LiveProgress, print_summary

    console = Console(stderr=True)
    if args.base_url is None:
        from orderpipe_ops import local_pipeline

        pipeline = local_pipeline.read()
        if pipeline is None:
            console.print(
                "[red]No BASE_URL[/red] and no local pipeline running: start one with `orderpipe run`, "
                "or give the API's URL and its credentials"
            )
            return 2
        args.base_url = pipeline.api_url
        local = pipeline.producer()
        args.token_url = args.token_url or local.token_url
        args.client_id = args.client_id or local.client_id
        args.client_secret = args.client_secret or local.client_secret
        args.api_key = args.api_key or local.api_key
        args.local_iam = local if local.iam else None
        console.print(f"pipeline: {pipeline.description}", highlight=False, markup=False)
    try:
        auth = authenticator(args)
    except ValueError as error:
        console.print(f"[red]No credentials:[/red] {error}")
        return 2
    if args.duration is None and args.count is None:
        args.duration = 10.0
    config = LoadConfig(
        base_url=args.base_url,
        auth=auth,
        api_key=args.api_key,
        rate=args.rate,
        concurrency=args.concurrency,
        duration_s=args.duration,
        count=args.count,
        batch_size=args.batch_size,
        profile=args.profile,
        visibility_every_s=args.visibility_every,
        visibility_timeout_s=args.visibility_timeout,
        visibility_poll_interval_s=args.poll_interval,
        request_timeout_s=args.timeout,
    )
    try:
        config.validate()
    except ValueError as error:
        console.print(f"[red]{error}[/red]")
        return 2
    with LiveProgress(console, config) as live:
        report = run_load(config, progress=live.update)
    summary = report.as_dict()
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(console, summary)
    console.print(f"report: {args.report}")
    if not args.no_plot:
        from orderpipe_testkit.loadgen.plot import plot_report

        plot_path = plot_report(report, args.plot or args.report.with_suffix(".png"))
        console.print(f"plot:   {plot_path}")
    return 0 if summary["requests_ok"] else 1


def authenticator(args: argparse.Namespace) -> Any:
    """The request authenticator the arguments describe (ValueError when they describe none)."""
    from orderpipe_testkit.auth import BearerTokenAuth, ClientCredentialsAuth, SigV4Auth

    local_iam = getattr(args, "local_iam", None)
    if local_iam:  # the local pipeline's IAM producer (orderpipe run --auth iam)
        return SigV4Auth(
            access_key_id=local_iam.access_key_id or "",
            secret_access_key=local_iam.secret_access_key or "",
            region=local_iam.region,
            api_key=args.api_key,
        )
    if args.sigv4:
        import boto3

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ValueError("--sigv4 found no AWS credentials (AWS_PROFILE, environment, SSO, role)")
        frozen = credentials.get_frozen_credentials()
        return SigV4Auth(
            access_key_id=frozen.access_key or "",
            secret_access_key=frozen.secret_key or "",
            session_token=frozen.token,
            region=args.sigv4,
            api_key=args.api_key,
        )
    if args.token_url and args.client_id and args.client_secret:
        return ClientCredentialsAuth(
            args.token_url, args.client_id, args.client_secret, scopes=args.scope or ()
        )
    if args.token:
        return BearerTokenAuth(args.token)
    raise ValueError(
        "pass --token-url, --client-id and --client-secret (or ORDERPIPE_TOKEN_URL, ORDERPIPE_CLIENT_ID, "
        "ORDERPIPE_CLIENT_SECRET), or --token, or --sigv4 REGION with --api-key"
    )
