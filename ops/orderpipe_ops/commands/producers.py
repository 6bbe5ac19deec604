"""`orderpipe producers add|list|revoke`: who may send orders, with which credentials and limits."""

from __future__ import annotations

import argparse
import json
from typing import Any

from orderpipe_ops.commands.targets import (
    LOCAL_PREFIX,
    WHERE,
    add_where_arguments,
    connect,
    guarded,
    say_where,
)

AUDIENCE = "operator"  # who this command is for (orderpipe_ops.cli groups --help by it)
# The pipeline tuning field (orderpipe_common.tuning.PipelineTuning, tests/unit/test_ops_package.py
# keeps these in step) that sets how long API Gateway caches an authorizer decision, and its default:
# how long a revoked producer may still be served.
AUTHORIZER_CACHE_TTL_SETTING = "authorizer_cache_ttl_seconds"
AUTHORIZER_CACHE_TTL_DEFAULT_SECONDS = 300
_REVOCATION = (
    f"A revocation takes effect within the authorizer cache TTL (default {AUTHORIZER_CACHE_TTL_DEFAULT_SECONDS} "
    f"s; deployed: the context key orderpipe:tuning, e.g. -c 'orderpipe:tuning="
    f'{{"{AUTHORIZER_CACHE_TTL_SETTING}": 60}}'
    f"'; locally: orderpipe run --tuning {AUTHORIZER_CACHE_TTL_SETTING}=60). In iam mode it takes effect "
    "at once, but also remove the principal's execute-api:Invoke permission."
)
WHERE_PRODUCERS = (
    WHERE
    + " A deployed stack is found by its outputs (AuthMode, ProducersTableName, UsagePlanId, ...). "
    + _REVOCATION
)
# The local gateway verifies SigV4 with the secrets it knows: those of the access keys `add` makes
# on the emulator (kept for it in the emulator's Secrets Manager), never an outside principal's.
LOCAL_IAM_PRINCIPAL_REFUSED = (
    "the local pipeline runs in iam mode and verifies SigV4 signatures only for access keys it knows: "
    "leave out --principal and `orderpipe producers add NAME` makes an IAM user NAME with an access key "
    "on the local emulator and prints them. --principal is for a deployed stack (--stack)."
)


def register(subparsers: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    producers = subparsers.add_parser(
        "producers",
        help="producers: add (credentials + usage-plan key), list, revoke",
        description="Administer the producers allowed to send orders. " + WHERE_PRODUCERS,
        formatter_class=formatter,
    )
    commands = producers.add_subparsers(title="producers commands", metavar="COMMAND", required=True)
    add = commands.add_parser(
        "add",
        help="create a producer: its credentials and its usage-plan key; prints what the producer needs",
        description=(
            "Create producer NAME. auth jwt with the stack's Cognito user pool: an app client with the "
            "client-credentials grant and the scopes asked for (the client secret is printed once, here). "
            "auth jwt with an external issuer: create the client there and pass --principal with the "
            "`sub` its tokens carry. auth iam: --principal is the producer's IAM role or user ARN; the "
            "policy it needs is printed; on the local pipeline in iam mode leave --principal out: an IAM "
            "user NAME and its access key are made on the emulator and printed. Every producer gets a usage-plan API key (the stack's plan, or a "
            "plan of its own with --rate/--burst/--quota).\n\n" + WHERE_PRODUCERS + "\n\nExamples:\n"
            "  orderpipe producers add acme                 # the local pipeline of `orderpipe run`\n"
            "  orderpipe producers add auditor --read-all --scope orders/read --stack OrderPipe\n"
            "  orderpipe producers add acme --principal arn:aws:iam::123456789012:role/acme "
            "--rate 50 --burst 100 --stack OrderPipe"
        ),
        formatter_class=formatter,
    )
    add.add_argument("name", help="the producer's name (stamped on its orders)")
    add.add_argument(
        "--scope",
        action="append",
        choices=["orders/write", "orders/read", "orders/read-all"],
        help="OAuth scope granted (repeatable; default orders/write and orders/read)",
    )
    add.add_argument("--read-all", action="store_true", help="also grant orders/read-all (read every order)")
    add.add_argument(
        "--principal", help="the credential principal: a token's sub (external issuer) or an IAM ARN"
    )
    add.add_argument("--rate", type=float, help="requests per second for this producer (own usage plan)")
    add.add_argument("--burst", type=int, help="burst for this producer (own usage plan)")
    add.add_argument("--quota", type=int, help="requests per day for this producer (own usage plan)")
    add.add_argument(
        "--rotate",
        action="store_true",
        help="add a further credential to an active producer (rotation: hand it over, then revoke --principal OLD)",
    )
    add_where_arguments(add)
    add.set_defaults(handler=run_add)

    listing = commands.add_parser(
        "list",
        help="producers, their principal, state and usage plan",
        description="List producers (active and revoked). " + WHERE_PRODUCERS,
        formatter_class=formatter,
    )
    add_where_arguments(listing)
    listing.set_defaults(handler=run_list)

    revoke = commands.add_parser(
        "revoke",
        help="revoke a producer: refused within the authorizer cache TTL, its key disabled",
        description=(
            "Revoke producer NAME: the producers table marks it revoked (the authorizer refuses it from "
            "its next uncached decision: within the authorizer cache TTL), its usage-plan key is "
            "disabled and its Cognito app client deleted (no new tokens). Its orders stay readable by "
            "read-all callers.\n\n"
            + WHERE_PRODUCERS
            + "\n\nExample:\n  orderpipe producers revoke acme --stack OrderPipe"
        ),
        formatter_class=formatter,
    )
    revoke.add_argument("name", help="the producer to revoke")
    revoke.add_argument("--principal", help="revoke only this credential of the producer (after a rotation)")
    add_where_arguments(revoke)
    revoke.set_defaults(handler=run_revoke)


def _connect(args: argparse.Namespace) -> tuple[Any, Any]:
    from orderpipe_ops.producers import Clients, deployment_from_stack, deployment_from_usage_plan

    connection = connect(
        args, ("dynamodb", "apigateway", "cognito-idp", "cloudformation", "iam", "secretsmanager")
    )
    say_where(connection)
    clients = Clients(
        dynamodb=connection.client("dynamodb"),
        apigateway=connection.client("apigateway"),
        cognito=connection.client("cognito-idp"),
        iam=connection.client("iam"),
        secretsmanager=connection.client("secretsmanager"),
    )
    if args.stack:
        return deployment_from_stack(connection.client("cloudformation"), args.stack), clients
    pipeline = connection.local_pipeline
    prefix = pipeline.resource_prefix if pipeline is not None else (args.prefix or LOCAL_PREFIX)
    return deployment_from_usage_plan(clients.apigateway, prefix), clients


def instructions(deployment: Any, new: Any) -> list[str]:
    """What the producer needs, as lines to hand over (commands paste as they are)."""
    from orderpipe_ops.producers import iam_policy

    api = deployment.api_url or "API_URL"
    sample = '{"customer_id":"cust-42","currency":"EUR","items":[{"sku":"SKU-1","quantity":2,"unit_price":"19.99"}]}'
    lines = [f"producer:      {new.record.producer}", f"API:           {api}"]
    if deployment.auth == "jwt" and new.client_id:
        token_url = deployment.token_url or "TOKEN_URL"
        scopes = " ".join(new.record.scopes)
        lines += [
            f"token URL:     {token_url}",
            f"client id:     {new.client_id}",
            f"client secret: {new.client_secret}   (shown once; store it in your secret manager)",
            f"scopes:        {scopes}",
            "Get a token (client credentials; valid for an hour, get a new one when it expires):",
            f"  TOKEN=$(curl -s -u '{new.client_id}:{new.client_secret}' -d grant_type=client_credentials "
            f"-d 'scope={scopes}' {token_url} | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
            "POST an order:",
            f'  curl -s -X POST {api.rstrip("/")}/orders -H "Authorization: Bearer $TOKEN" '
            f"-H 'content-type: application/json' -d '{sample}'",
        ]
    elif deployment.auth == "jwt":
        lines += [f"principal:     {new.record.principal} (tokens from your issuer with this sub)"]
    elif new.access_key_id:  # the local pipeline in iam mode: an IAM user of the emulator
        credential = (
            f"--aws-sigv4 'aws:amz:us-east-1:execute-api' --user '{new.access_key_id}:{new.secret_access_key}' "
            f"-H 'x-api-key: {new.api_key}'"
        )
        lines += [
            f"principal:     {new.record.principal}",
            f"access key id: {new.access_key_id}",
            f"secret key:    {new.secret_access_key}   (shown once)",
            f"API key:       {new.api_key}   (send as x-api-key with every SigV4-signed request)",
            "POST an order:",
            f"  curl -s -X POST {api.rstrip('/')}/orders {credential} -H 'content-type: application/json' "
            f"-d '{sample}'",
        ]
    else:
        lines += [
            f"principal:     {new.record.principal}",
            f"API key:       {new.api_key}   (send as x-api-key with every SigV4-signed request)",
            "Attach this identity policy to the principal:",
            json.dumps(
                iam_policy(deployment.api_arn or "arn:aws:execute-api:REGION:ACCOUNT:API_ID"), indent=2
            ),
        ]
    return lines


@guarded
def run_add(args: argparse.Namespace) -> int:
    from rich.console import Console

    from orderpipe_ops.producers import DEFAULT_SCOPES, SCOPE_READ_ALL, add_producer
    from orderpipe_ops.queues import OperatorError

    deployment, clients = _connect(args)
    if deployment.local_iam_secrets and args.principal:
        raise OperatorError(LOCAL_IAM_PRINCIPAL_REFUSED)
    scopes = tuple(args.scope or DEFAULT_SCOPES) + ((SCOPE_READ_ALL,) if args.read_all else ())
    new = add_producer(
        deployment,
        clients,
        args.name,
        principal=args.principal,
        scopes=tuple(dict.fromkeys(scopes)),
        rate=args.rate,
        burst=args.burst,
        quota=args.quota,
        rotate=args.rotate,
    )
    if args.json:
        print(
            json.dumps(
                {
                    **new.record.as_dict(),
                    "auth": deployment.auth,
                    "api_url": deployment.api_url,
                    "token_url": deployment.token_url,
                    "client_id": new.client_id,
                    "client_secret": new.client_secret,
                    "api_key": new.api_key,
                    "access_key_id": new.access_key_id,
                    "secret_access_key": new.secret_access_key,
                },
                indent=2,
            )
        )
        return 0
    console = Console()
    for line in instructions(deployment, new):
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    return 0


@guarded
def run_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from orderpipe_ops.producers import list_producers

    deployment, clients = _connect(args)
    records = list_producers(deployment, clients)
    if args.json:
        print(json.dumps([record.as_dict() for record in records], indent=2))
        return 0
    table = Table(title=f"producers ({deployment.auth})", title_justify="left")
    for column in ("producer", "principal", "status", "scopes", "usage plan", "created", "revoked"):
        table.add_column(column)
    for record in records:
        table.add_row(
            record.producer,
            record.principal,
            record.status,
            " ".join(record.scopes) or "-",
            record.usage_plan_id or "-",
            record.created_at or "-",
            record.revoked_at or "",
        )
    Console().print(table)
    return 0


@guarded
def run_revoke(args: argparse.Namespace) -> int:
    from rich.console import Console

    from orderpipe_ops.producers import revoke_producer

    deployment, clients = _connect(args)
    revoked = revoke_producer(deployment, clients, args.name, principal=args.principal)
    if args.json:
        print(json.dumps([record.as_dict() for record in revoked], indent=2))
        return 0
    for record in revoked:
        Console().print(
            f"revoked {record.producer} (principal {record.principal}) at {record.revoked_at}; refused "
            "within the authorizer cache TTL, its usage-plan key disabled",
            highlight=False,
        )
    return 0
