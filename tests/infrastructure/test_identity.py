"""The synthesized template authenticates producers as `orderpipe:auth` says."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from stacks.config import ContextError
from tests.infrastructure.conftest import Synthesized, synthesize


def resources(synth: Synthesized, kind: str) -> dict[str, Any]:
    return dict(synth.template.find_resources(kind))


@pytest.fixture(scope="module")
def jwt_synth() -> Synthesized:
    return synthesize({"orderpipe:tuning": {"authorizer_cache_ttl_seconds": 120}})


@pytest.fixture(scope="module")
def iam_synth() -> Synthesized:
    return synthesize(
        {"orderpipe:auth": "iam", "orderpipe:readAllPrincipals": ["arn:aws:iam::123456789012:role/auditor"]}
    )


def test_jwt_a_request_authorizer_on_the_authorization_header_cached_for_the_tuned_ttl(jwt_synth):
    jwt_synth.template.has_resource_properties(
        "AWS::ApiGateway::Authorizer",
        {
            "Type": "REQUEST",
            "IdentitySource": "method.request.header.Authorization",
            "AuthorizerResultTtlInSeconds": 120,
        },
    )
    # The authorizer names each producer's usage-plan key: producers hold client credentials only
    jwt_synth.template.has_resource_properties("AWS::ApiGateway::RestApi", {"ApiKeySourceType": "AUTHORIZER"})


def test_jwt_a_cognito_pool_with_the_orders_scopes_and_no_self_sign_up(jwt_synth):
    jwt_synth.template.has_resource_properties(
        "AWS::Cognito::UserPoolResourceServer",
        {
            "Identifier": "orders",
            "Scopes": Match.array_with(
                [Match.object_like({"ScopeName": name}) for name in ("write", "read", "read-all")]
            ),
        },
    )
    jwt_synth.template.has_resource_properties(
        "AWS::Cognito::UserPool", {"AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True}}
    )
    jwt_synth.template.resource_count_is("AWS::Cognito::UserPoolDomain", 1)


def test_jwt_the_authorizer_reads_only_the_producers_table_and_knows_the_issuer(jwt_synth):
    functions = resources(jwt_synth, "AWS::Lambda::Function")
    [authorizer] = [
        f
        for f in functions.values()
        if f["Properties"]["Handler"] == "orderpipe_authorizer.handler.lambda_handler"
    ]
    env = authorizer["Properties"]["Environment"]["Variables"]
    assert {"AUTH_ISSUER", "AUTH_JWKS_URL", "PRODUCERS_TABLE_NAME"} <= set(env)
    assert "VpcConfig" not in authorizer["Properties"]  # it fetches the issuer's keys over HTTPS
    statements = [
        statement
        for policy in resources(jwt_synth, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "dynamodb:GetItem"
    ]
    assert statements


def test_an_authorizer_that_cannot_decide_answers_503_with_retry_after(jwt_synth):
    jwt_synth.template.has_resource_properties(
        "AWS::ApiGateway::GatewayResponse",
        {
            "ResponseType": "AUTHORIZER_FAILURE",
            "StatusCode": "503",
            "ResponseParameters": {"gatewayresponse.header.Retry-After": "'5'"},
        },
    )


@pytest.mark.parametrize("mode", ["jwt", "iam"])
def test_the_gateway_responses_are_the_ones_the_local_gateway_answers(jwt_synth, iam_synth, mode):
    from orderpipe_common.identity import gateway_responses

    # Given the gateway responses the template sets a status or headers on (beyond the JSON body)
    synth = jwt_synth if mode == "jwt" else iam_synth
    configured = {
        props["ResponseType"]: (props.get("StatusCode"), props.get("ResponseParameters") or {})
        for props in (r["Properties"] for r in resources(synth, "AWS::ApiGateway::GatewayResponse").values())
        if "StatusCode" in props or "ResponseParameters" in props
    }
    # Then they are exactly what the local gateway answers (jwt: a 401 with WWW-Authenticate: Bearer)
    assert configured == {
        response_type: (
            str(response.status),
            {f"gatewayresponse.header.{name}": f"'{value}'" for name, value in response.headers.items()},
        )
        for response_type, response in gateway_responses(mode).items()
    }
    assert ("UNAUTHORIZED" in configured) == (mode == "jwt")


def test_iam_every_method_is_aws_iam_and_the_producer_sends_its_key(iam_synth):
    for method in resources(iam_synth, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        if props["HttpMethod"] != "OPTIONS":
            assert props["AuthorizationType"] == "AWS_IAM" and props["ApiKeyRequired"] is True
    iam_synth.template.has_resource_properties("AWS::ApiGateway::RestApi", {"ApiKeySourceType": "HEADER"})
    iam_synth.template.resource_count_is("AWS::ApiGateway::Authorizer", 0)
    alarm_descriptions = [
        alarm["Properties"]["AlarmDescription"]
        for alarm in resources(iam_synth, "AWS::CloudWatch::Alarm").values()
    ]
    assert not any("authorizer" in description for description in alarm_descriptions)  # none to watch
    iam_synth.template.resource_count_is("AWS::Cognito::UserPool", 0)
    functions = resources(iam_synth, "AWS::Lambda::Function")
    readers = [
        f["Properties"]["Environment"]["Variables"]
        for f in functions.values()
        if f["Properties"]["Handler"] == "orderpipe_reader.handler.lambda_handler"
    ]
    assert readers[0]["READ_ALL_PRINCIPALS"] == "arn:aws:iam::123456789012:role/auditor"


def test_an_external_issuer_needs_an_audience() -> None:
    with pytest.raises(ContextError, match="authAudience"):
        synthesize({"orderpipe:authIssuer": "https://example.okta.com/oauth2/default"})


def test_an_external_issuer_replaces_the_user_pool() -> None:
    synth = synthesize(
        {
            "orderpipe:authIssuer": "https://example.okta.com/oauth2/default",
            "orderpipe:authAudience": "api://orderpipe",
            "orderpipe:authJwksUrl": "https://example.okta.com/oauth2/default/v1/keys",
            "orderpipe:authScopeClaim": "scp",
        }
    )
    synth.template.resource_count_is("AWS::Cognito::UserPool", 0)
    synth.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "AUTH_ISSUER": "https://example.okta.com/oauth2/default",
                        "AUTH_AUDIENCE": "api://orderpipe",
                        "AUTH_SCOPE_CLAIM": "scp",
                    }
                )
            }
        },
    )
