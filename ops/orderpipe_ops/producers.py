"""Producer administration (logic for `orderpipe producers add|list|revoke`), boto3 only.

A producer is a name (stamped on its orders), a credential principal and a usage-plan API key:
- auth `jwt` with the stack's Cognito user pool: `add` creates an app client (client-credentials
  grant, the chosen scopes, a generated secret); its client id is the principal (`sub` of its tokens).
  With an external issuer (Okta, Auth0, Entra) the client is made there and `add --principal` names
  its `sub`;
- auth `iam`: the principal is the producer's IAM role or user ARN (`add --principal ARN`); the
  producer signs with its own AWS credentials.
Each producer gets an API key in the stack's usage plan (or in a usage plan of its own when
`--rate/--burst/--quota` are given); in `jwt` mode the authorizer hands the key to API Gateway, so
the producer never holds it. The producers table maps principal -> producer, state and key; the
authorizer reads it on every uncached decision, so `revoke` takes effect within the authorizer
cache TTL. `revoke` also disables the API key and deletes the Cognito app client (no new tokens).

Everything takes boto3 clients, so it runs against the local runtime (moto: Cognito, API Gateway,
DynamoDB) exactly as against AWS.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from orderpipe_ops.queues import OperatorError

# Names shared with the functions (orderpipe_common.tables / .identity); tests/unit/test_ops_package.py
# keeps them in step, since this package must not import the functions' code.
PRODUCERS_PARTITION_KEY = "principal"
PRODUCERS_NAME_ATTRIBUTE = "producer"
PRODUCERS_STATUS_ATTRIBUTE = "status"
PRODUCERS_USAGE_KEY_ATTRIBUTE = "usage_key"
PRODUCER_ACTIVE = "active"
PRODUCER_REVOKED = "revoked"
PRODUCER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/+=,-]{0,255}$"
SCOPE_WRITE, SCOPE_READ, SCOPE_READ_ALL = "orders/write", "orders/read", "orders/read-all"
DEFAULT_SCOPES = (SCOPE_WRITE, SCOPE_READ)

# Tags of the usage plan that describe a deployment (the local runtime's has them; a stack has outputs).
TAG_AUTH = "orderpipe:auth"
TAG_TOKEN_URL = "orderpipe:token-url"  # noqa: S105 - a tag name, not a secret
TAG_USER_POOL = "orderpipe:user-pool-id"
TAG_PRODUCERS_TABLE = "orderpipe:producers-table"
TAG_API_URL = "orderpipe:api-url"
# The local runtime in iam mode: where `add` keeps the secrets of the IAM access keys it makes on the
# emulator (Secrets Manager, `<this>/<access key id>`), for the local SigV4 verifier to read: an
# emulated IAM, like the real one, never gives a secret back.
TAG_LOCAL_IAM_SECRETS = "orderpipe:local-iam-secrets"
COGNITO_CLIENT_NAME_MAX = 128
# An IAM user name (what `add` makes for a local iam-mode producer).
IAM_USER_NAME_PATTERN = r"^[\w+=,.@-]{1,64}$"
# The stack's outputs that describe it.
OUTPUTS = {
    "AuthMode": "auth",
    "ProducersTableName": "producers_table",
    "UsagePlanId": "usage_plan_id",
    "UserPoolId": "user_pool_id",
    "TokenUrl": "token_url",
    "ApiUrl": "api_url",
    "ApiArn": "api_arn",
}

AuthMode = Literal["jwt", "iam"]


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """Where producers are administered: a deployed stack or the local runtime."""

    auth: AuthMode
    producers_table: str
    usage_plan_id: str
    api_url: str | None = None
    user_pool_id: str | None = None  # jwt with the stack's Cognito user pool
    token_url: str | None = None
    api_arn: str | None = None  # for the IAM policy printed in iam mode
    local_iam_secrets: str | None = None  # the local runtime in iam mode (TAG_LOCAL_IAM_SECRETS)


@dataclass(frozen=True, kw_only=True)
class Clients:
    dynamodb: Any
    apigateway: Any
    cognito: Any = None
    iam: Any = None  # the local runtime in iam mode: its emulated IAM and Secrets Manager
    secretsmanager: Any = None


@dataclass(frozen=True, kw_only=True)
class ProducerRecord:
    producer: str
    principal: str
    status: str
    api_key_id: str | None
    usage_plan_id: str | None
    scopes: tuple[str, ...] = ()
    created_at: str | None = None
    revoked_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class NewProducer:
    """What `add` made, including what the producer needs (the secret is shown only here, once)."""

    record: ProducerRecord
    client_id: str | None = None
    client_secret: str | None = None
    api_key: str | None = None  # iam mode: the producer sends it as x-api-key
    access_key_id: str | None = None  # the local runtime in iam mode: the IAM user's access key
    secret_access_key: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


# --- where ---------------------------------------------------------------------------------------


def deployment_from_stack(cloudformation: Any, stack: str) -> Deployment:
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        raise OperatorError(f"stack {stack!r}: {error.response['Error']['Message']}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    values = {field_name: outputs.get(key) for key, field_name in OUTPUTS.items()}
    missing = [key for key in ("AuthMode", "ProducersTableName", "UsagePlanId") if not outputs.get(key)]
    if missing:
        raise OperatorError(f"stack {stack!r} has no output {', '.join(missing)}: is it an orderpipe stack?")
    return Deployment(**values)  # type: ignore[arg-type]


def deployment_from_usage_plan(apigateway: Any, name: str) -> Deployment:
    """The local runtime's deployment, from the tags of its usage plan named `name`."""
    plans = [plan for plan in apigateway.get_usage_plans(limit=500).get("items", []) if plan["name"] == name]
    if not plans:
        raise OperatorError(f"no usage plan named {name!r} at this endpoint: is `orderpipe run` running?")
    tags = plans[0].get("tags") or {}
    if TAG_AUTH not in tags or TAG_PRODUCERS_TABLE not in tags:
        raise OperatorError(f"usage plan {name!r} does not describe an orderpipe deployment (tags missing)")
    return Deployment(
        auth=tags[TAG_AUTH],
        producers_table=tags[TAG_PRODUCERS_TABLE],
        usage_plan_id=plans[0]["id"],
        api_url=tags.get(TAG_API_URL),
        user_pool_id=tags.get(TAG_USER_POOL),
        token_url=tags.get(TAG_TOKEN_URL),
        local_iam_secrets=tags.get(TAG_LOCAL_IAM_SECRETS),
    )


# --- the producers table ------------------------------------------------------------------------


def _record(item: dict[str, Any]) -> ProducerRecord:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return ProducerRecord(
        producer=item[PRODUCERS_NAME_ATTRIBUTE]["S"],
        principal=item[PRODUCERS_PARTITION_KEY]["S"],
        status=text(PRODUCERS_STATUS_ATTRIBUTE) or "?",
        api_key_id=text("api_key_id"),
        usage_plan_id=text("usage_plan_id"),
        scopes=tuple(item.get("scopes", {}).get("SS", ())),
        created_at=text("created_at"),
        revoked_at=text("revoked_at"),
    )


def list_producers(deployment: Deployment, clients: Clients) -> list[ProducerRecord]:
    records: list[ProducerRecord] = []
    for page in clients.dynamodb.get_paginator("scan").paginate(TableName=deployment.producers_table):
        records.extend(_record(item) for item in page.get("Items", []))
    return sorted(records, key=lambda record: (record.producer, record.principal))


def _find(deployment: Deployment, clients: Clients, name: str) -> list[ProducerRecord]:
    return [record for record in list_producers(deployment, clients) if record.producer == name]


# --- add / revoke --------------------------------------------------------------------------------


def _usage_plan_for(
    deployment: Deployment,
    clients: Clients,
    name: str,
    *,
    rate: float | None,
    burst: int | None,
    quota: int | None,
) -> str:
    if rate is None and burst is None and quota is None:
        return deployment.usage_plan_id
    # Limits of a usage plan apply per key: a producer with its own limits gets a plan of its own,
    # on the same API stages as the stack's plan.
    shared = clients.apigateway.get_usage_plan(usagePlanId=deployment.usage_plan_id)
    throttle = dict(shared.get("throttle") or {})
    if rate is not None:
        throttle["rateLimit"] = float(rate)
    if burst is not None:
        throttle["burstLimit"] = int(burst)
    options: dict[str, Any] = {"throttle": throttle, "apiStages": shared.get("apiStages") or []}
    if quota is not None:
        options["quota"] = {"limit": int(quota), "period": "DAY"}
    elif shared.get("quota"):
        options["quota"] = shared["quota"]
    plan = clients.apigateway.create_usage_plan(
        name=f"{name}-plan", description=f"orderpipe producer {name}", **options
    )
    return str(plan["id"])


def add_producer(
    deployment: Deployment,
    clients: Clients,
    name: str,
    *,
    principal: str | None = None,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    rate: float | None = None,
    burst: int | None = None,
    quota: int | None = None,
    rotate: bool = False,
) -> NewProducer:
    """Create producer `name`, or with `rotate` a further credential for an active one (to rotate:
    hand the new one over, then `revoke_producer(..., principal=<old>)`)."""
    if not re.fullmatch(PRODUCER_PATTERN, name):
        raise OperatorError(f"producer name {name!r} must match {PRODUCER_PATTERN}")
    unknown = sorted(set(scopes) - {SCOPE_WRITE, SCOPE_READ, SCOPE_READ_ALL})
    if unknown:
        raise OperatorError(f"unknown scope(s) {', '.join(unknown)}")
    active = any(record.status == PRODUCER_ACTIVE for record in _find(deployment, clients, name))
    if active and not rotate:
        raise OperatorError(
            f"producer {name!r} exists and is active (--rotate adds a second credential; revoke to re-create it)"
        )
    if rotate and not active:
        raise OperatorError(f"no active producer named {name!r} to rotate")

    client_id = client_secret = None
    if deployment.auth == "jwt" and principal is None:
        if not deployment.user_pool_id:
            raise OperatorError(
                "this deployment uses an external issuer: create the client there and pass --principal "
                "with its token subject (sub)"
            )
        client = clients.cognito.create_user_pool_client(
            UserPoolId=deployment.user_pool_id,
            ClientName=cognito_client_name(name),
            GenerateSecret=True,
            AllowedOAuthFlows=["client_credentials"],
            AllowedOAuthScopes=list(scopes),
            AllowedOAuthFlowsUserPoolClient=True,
            SupportedIdentityProviders=["COGNITO"],
        )["UserPoolClient"]
        client_id, client_secret = client["ClientId"], client["ClientSecret"]
        principal = client_id
    access_key_id = secret_access_key = None
    if deployment.auth == "iam" and principal is None and deployment.local_iam_secrets:
        principal, access_key_id, secret_access_key = _local_iam_user(
            deployment.local_iam_secrets, clients, name
        )
    if principal is None:
        raise OperatorError("iam mode: pass --principal with the producer's IAM role or user ARN")

    usage_plan_id = _usage_plan_for(deployment, clients, name, rate=rate, burst=burst, quota=quota)
    key = clients.apigateway.create_api_key(
        name=f"orderpipe-{name}-{datetime.now(UTC):%Y%m%d%H%M%S}",
        description=f"usage-plan key of orderpipe producer {name}",
        enabled=True,
    )
    clients.apigateway.create_usage_plan_key(usagePlanId=usage_plan_id, keyId=key["id"], keyType="API_KEY")
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    item: dict[str, Any] = {
        PRODUCERS_PARTITION_KEY: {"S": principal},
        PRODUCERS_NAME_ATTRIBUTE: {"S": name},
        PRODUCERS_STATUS_ATTRIBUTE: {"S": PRODUCER_ACTIVE},
        PRODUCERS_USAGE_KEY_ATTRIBUTE: {"S": key["value"]},
        "api_key_id": {"S": key["id"]},
        "usage_plan_id": {"S": usage_plan_id},
        "created_at": {"S": created_at},
    }
    if deployment.auth == "jwt":
        item["scopes"] = {"SS": sorted(scopes)}
    clients.dynamodb.put_item(TableName=deployment.producers_table, Item=item)
    record = _record(item)
    return NewProducer(
        record=record,
        client_id=client_id,
        client_secret=client_secret,
        api_key=key["value"] if deployment.auth == "iam" else None,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )


def cognito_client_name(name: str) -> str:
    """The app client's name for producer `name`: a label only (the producers table maps its client id
    to the producer), within what Cognito takes: 1-128 characters of [\\w\\s+=,.@-]. A producer name
    may be 256 characters and hold `:` and `/`."""
    return re.sub(r"[^\w\s+=,.@-]", "-", name)[:COGNITO_CLIENT_NAME_MAX]


def local_iam_secret_name(secrets: str, access_key_id: str) -> str:
    return f"{secrets}/{access_key_id}"


def _local_iam_user(secrets: str, clients: Clients, name: str) -> tuple[str, str, str]:
    """An IAM user `name` on the emulator with a new access key, its secret kept for the local
    verifier: (user ARN, access key id, secret)."""
    if not re.fullmatch(IAM_USER_NAME_PATTERN, name):
        raise OperatorError(
            f"producer name {name!r}: the local pipeline in iam mode makes an IAM user of that name, "
            f"which must match {IAM_USER_NAME_PATTERN}"
        )
    try:
        user = clients.iam.create_user(UserName=name)["User"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "EntityAlreadyExists":  # a producer revoked and added again
            raise
        user = clients.iam.get_user(UserName=name)["User"]
    key = clients.iam.create_access_key(UserName=name)["AccessKey"]
    clients.secretsmanager.create_secret(
        Name=local_iam_secret_name(secrets, key["AccessKeyId"]),
        SecretString=json.dumps({"secret_access_key": key["SecretAccessKey"], "principal_arn": user["Arn"]}),
    )
    return str(user["Arn"]), str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def revoke_producer(
    deployment: Deployment, clients: Clients, name: str, *, principal: str | None = None
) -> list[ProducerRecord]:
    """Revoke every active credential of producer `name` (or only `principal`'s); returns what was revoked."""
    active = [
        record
        for record in _find(deployment, clients, name)
        if record.status == PRODUCER_ACTIVE and principal in (None, record.principal)
    ]
    if not active:
        raise OperatorError(
            f"no active producer named {name!r}" + (f" with principal {principal}" if principal else "")
        )
    revoked_at = datetime.now(UTC).isoformat(timespec="seconds")
    revoked = []
    for record in active:
        # The table first: the authorizer refuses the principal from its next uncached decision on.
        clients.dynamodb.update_item(
            TableName=deployment.producers_table,
            Key={PRODUCERS_PARTITION_KEY: {"S": record.principal}},
            UpdateExpression="SET #status = :revoked, revoked_at = :at",
            ExpressionAttributeNames={"#status": PRODUCERS_STATUS_ATTRIBUTE},
            ExpressionAttributeValues={":revoked": {"S": PRODUCER_REVOKED}, ":at": {"S": revoked_at}},
        )
        if record.api_key_id:
            clients.apigateway.update_api_key(
                apiKey=record.api_key_id,
                patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}],
            )
        if deployment.auth == "jwt" and deployment.user_pool_id and record.principal:
            try:  # no new tokens for this client (tokens already issued are refused by the table)
                clients.cognito.delete_user_pool_client(
                    UserPoolId=deployment.user_pool_id, ClientId=record.principal
                )
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
        revoked.append(
            ProducerRecord(**{**record.as_dict(), "status": PRODUCER_REVOKED, "revoked_at": revoked_at})
        )
    return revoked


def iam_policy(api_arn: str) -> dict[str, Any]:
    """The identity policy a producer's role needs in iam mode (attach it to the role)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SubmitAndReadOrders",
                "Effect": "Allow",
                "Action": "execute-api:Invoke",
                "Resource": [
                    f"{api_arn}/*/POST/orders",
                    f"{api_arn}/*/POST/orders/batch",
                    f"{api_arn}/*/GET/orders/*",
                ],
            }
        ],
    }
