"""The identity side of the pipeline on the local AWS emulator (moto), as the stack creates it.

- the producers table (principal -> producer, state, usage-plan key), read by the authorizer;
- in `jwt` mode a Cognito user pool with the `orders` resource server and its scopes (the local
  issuer's client directory: `orderpipe producers add` creates app clients in it);
- the usage plan producers' API keys join, tagged with what `orderpipe producers` needs to find the
  rest (auth mode, table, user pool, token and API URLs), since a local run has no stack outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from orderpipe_common.identity import RESOURCE_SERVER
from orderpipe_common.tables import PRODUCERS_PARTITION_KEY
from orderpipe_common.tuning import DEFAULT_USAGE_PLAN
from orderpipe_ops import producers as ops_producers

AuthMode = Literal["jwt", "iam"]


@dataclass(frozen=True)
class IdentityResources:
    auth: AuthMode
    producers_table: str
    usage_plan_id: str
    user_pool_id: str | None


def create_producers_table(name: str, *, dynamodb: Any) -> str:
    try:
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": PRODUCERS_PARTITION_KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": PRODUCERS_PARTITION_KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return name


def create_user_pool(name: str, *, cognito: Any) -> str:
    """A user pool with the orders resource server (scopes write, read, read-all); reused by name."""
    existing = [
        pool["Id"] for pool in cognito.list_user_pools(MaxResults=60)["UserPools"] if pool["Name"] == name
    ]
    pool_id = existing[0] if existing else cognito.create_user_pool(PoolName=name)["UserPool"]["Id"]
    scopes = [
        {"ScopeName": "write", "ScopeDescription": "submit orders"},
        {"ScopeName": "read", "ScopeDescription": "read the producer's own orders"},
        {"ScopeName": "read-all", "ScopeDescription": "read every producer's orders"},
    ]
    try:
        cognito.create_resource_server(
            UserPoolId=pool_id, Identifier=RESOURCE_SERVER, Name="orderpipe orders", Scopes=scopes
        )
    except ClientError as error:
        if error.response["Error"]["Code"] not in {"InvalidParameterException", "ResourceExistsException"}:
            raise
    return str(pool_id)


def local_iam_secrets(prefix: str) -> str:
    """Where `orderpipe producers add` keeps the secrets of the IAM access keys it makes (iam mode)."""
    return f"{prefix}-iam-credentials"


def create_usage_plan(name: str, *, apigateway: Any, tags: dict[str, str]) -> str:
    existing = [
        plan for plan in apigateway.get_usage_plans(limit=500).get("items", []) if plan["name"] == name
    ]
    for plan in existing:  # a plan left by an earlier run at the same endpoint: start afresh
        apigateway.delete_usage_plan(usagePlanId=plan["id"])
    plan = apigateway.create_usage_plan(
        name=name,
        description="orderpipe producers (local)",
        # The stack's default limits (orderpipe:apiRateLimit ...); the emulator meters nothing.
        throttle={
            "rateLimit": float(DEFAULT_USAGE_PLAN.rate_limit),
            "burstLimit": DEFAULT_USAGE_PLAN.burst_limit,
        },
        quota={"limit": DEFAULT_USAGE_PLAN.quota_per_day, "period": "DAY"},
        tags=tags,
    )
    return str(plan["id"])


def create_identity_resources(
    prefix: str,
    *,
    auth: AuthMode,
    dynamodb: Any,
    apigateway: Any,
    cognito: Any,
    api_url: str,
    token_url: str | None,
    user_pool_id: str | None,
) -> IdentityResources:
    table = create_producers_table(f"{prefix}-producers", dynamodb=dynamodb)
    tags = {
        ops_producers.TAG_AUTH: auth,
        ops_producers.TAG_PRODUCERS_TABLE: table,
        ops_producers.TAG_API_URL: api_url,
    }
    if user_pool_id:
        tags[ops_producers.TAG_USER_POOL] = user_pool_id
    if token_url:
        tags[ops_producers.TAG_TOKEN_URL] = token_url
    if auth == "iam":
        tags[ops_producers.TAG_LOCAL_IAM_SECRETS] = local_iam_secrets(prefix)
    usage_plan_id = create_usage_plan(prefix, apigateway=apigateway, tags=tags)
    return IdentityResources(
        auth=auth, producers_table=table, usage_plan_id=usage_plan_id, user_pool_id=user_pool_id
    )
