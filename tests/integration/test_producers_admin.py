"""`orderpipe producers` logic against moto's Cognito, API Gateway and DynamoDB (in process)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from orderpipe_devenv.aws.identity import create_identity_resources, create_user_pool
from orderpipe_ops.producers import (
    Clients,
    add_producer,
    deployment_from_usage_plan,
    list_producers,
    revoke_producer,
)
from orderpipe_ops.queues import OperatorError


@pytest.fixture
def deployment():
    with mock_aws():
        clients = Clients(
            dynamodb=boto3.client("dynamodb", region_name="us-east-1"),
            apigateway=boto3.client("apigateway", region_name="us-east-1"),
            cognito=boto3.client("cognito-idp", region_name="us-east-1"),
        )
        pool = create_user_pool("orderpipe-test", cognito=clients.cognito)
        create_identity_resources(
            "orderpipe-test",
            auth="jwt",
            dynamodb=clients.dynamodb,
            apigateway=clients.apigateway,
            cognito=clients.cognito,
            api_url="http://127.0.0.1:1",
            token_url="http://127.0.0.1:2/oauth2/token",
            user_pool_id=pool,
        )
        yield deployment_from_usage_plan(clients.apigateway, "orderpipe-test"), clients


def test_add_makes_an_app_client_a_key_in_the_plan_and_a_registry_entry(deployment):
    where, clients = deployment
    # When a producer is added with its own limits
    new = add_producer(where, clients, "acme", rate=5, burst=10, quota=1000)
    # Then it has a client-credentials app client with the scopes asked for...
    client = clients.cognito.describe_user_pool_client(UserPoolId=where.user_pool_id, ClientId=new.client_id)[
        "UserPoolClient"
    ]
    assert (
        client["AllowedOAuthFlows"] == ["client_credentials"] and client["ClientSecret"] == new.client_secret
    )
    assert set(client["AllowedOAuthScopes"]) == {"orders/write", "orders/read"}
    # ...a usage plan of its own with those limits, holding its key...
    plan = clients.apigateway.get_usage_plan(usagePlanId=new.record.usage_plan_id)
    assert plan["throttle"] == {"rateLimit": 5.0, "burstLimit": 10} and plan["quota"]["limit"] == 1000
    keys = clients.apigateway.get_usage_plan_keys(usagePlanId=new.record.usage_plan_id)["items"]
    assert [key["id"] for key in keys] == [new.record.api_key_id]
    # ...and an active registry entry naming it by its client id
    [record] = list_producers(where, clients)
    assert (record.producer, record.principal, record.status) == ("acme", new.client_id, "active")
    # A second active producer of the same name is refused
    with pytest.raises(OperatorError, match="exists"):
        add_producer(where, clients, "acme")


def test_revoke_marks_the_entry_disables_the_key_and_deletes_the_client(deployment):
    where, clients = deployment
    new = add_producer(where, clients, "acme")
    # When it is revoked
    [revoked] = revoke_producer(where, clients, "acme")
    # Then the registry says so, the key is disabled and no new token can be had
    assert revoked.status == "revoked" and list_producers(where, clients)[0].status == "revoked"
    assert clients.apigateway.get_api_key(apiKey=new.record.api_key_id)["enabled"] is False
    with pytest.raises(clients.cognito.exceptions.ResourceNotFoundException):
        clients.cognito.describe_user_pool_client(UserPoolId=where.user_pool_id, ClientId=new.client_id)
    # ...and it can be added again (new credentials)
    assert add_producer(where, clients, "acme").client_id != new.client_id


def test_bad_names_and_scopes_are_refused(deployment):
    where, clients = deployment
    with pytest.raises(OperatorError, match="must match"):
        add_producer(where, clients, "no spaces please")
    with pytest.raises(OperatorError, match="unknown scope"):
        add_producer(where, clients, "acme", scopes=("orders/delete",))
    with pytest.raises(OperatorError, match="no active producer"):
        revoke_producer(where, clients, "nobody")


def test_rotation_adds_a_credential_then_revokes_only_the_old_one(deployment):
    where, clients = deployment
    old = add_producer(where, clients, "acme")
    new = add_producer(where, clients, "acme", rotate=True)
    revoke_producer(where, clients, "acme", principal=old.client_id)
    states = {record.principal: record.status for record in list_producers(where, clients)}
    assert states == {old.client_id: "revoked", new.client_id: "active"}
