"""REST API: POST /orders, POST /orders/batch, GET /orders/{id}, every method authenticated and metered.

Authentication by `orderpipe:auth`: `jwt` (default) puts the authorizer function on every method as a
REQUEST authorizer (identity source: the Authorization header; decisions cached for the tuning's
`authorizer_cache_ttl_seconds`); it returns the producer's usage-plan key (API key source AUTHORIZER),
so producers hold only OAuth client credentials. `iam` puts AWS_IAM on every method; producers sign
with SigV4 and send their usage-plan key as `x-api-key`. API keys meter usage plans; they never
authenticate on their own.

Body validation is the ingest function's (one pydantic model, errors naming the field, 400/413/415/
422). The gateway adds what it can enforce before a function runs: the credential, the usage plan's
throttle and quota, the `{id}` path parameter, its hard 10 MB payload limit, and JSON error bodies
of the same shape as the functions' (`{"error": {"code", "message"}}`) for its own 4XX/5XX answers.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from orderpipe_common.identity import gateway_responses
from stacks.config import ApiCloudWatchRole, ApiConfig, AuthConfig
from stacks.nag import acknowledge

_ERROR_TEMPLATE = (
    '{"error": {"code": "$context.error.responseType", "message": $context.error.messageString}}'
)


class OrdersApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ApiConfig,
        auth: AuthConfig,
        cloudwatch_role: ApiCloudWatchRole,
        ingest: lambda_.IFunction,
        reader: lambda_.IFunction,
        authorizer: lambda_.IFunction | None,
        authorizer_cache_ttl_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            # Unique per stack (stack names are unique per account and region): the API's CloudWatch
            # metrics are keyed by this name, so alarms never add up another API's requests.
            rest_api_name=f"{cdk.Stack.of(self).stack_name}-orders",
            description="orderpipe: accept orders asynchronously, read them back",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Access and execution logs need the account's (region-wide) API Gateway CloudWatch role.
            # It is shared by every API in the region, so this stack sets it only when asked to, and
            # then keeps it when the stack is deleted (deleting it would break the others' logging).
            cloud_watch_role=cloudwatch_role == "create",
            cloud_watch_role_removal_policy=(
                cdk.RemovalPolicy.RETAIN if cloudwatch_role == "create" else None
            ),
            deploy_options=apigw.StageOptions(
                stage_name="v1",
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
            default_method_options=self._method_options(auth, authorizer, authorizer_cache_ttl_seconds),
            # jwt: the authorizer names the producer's key; iam: the producer sends it.
            api_key_source_type=(
                apigw.ApiKeySourceType.AUTHORIZER if auth.mode == "jwt" else apigw.ApiKeySourceType.HEADER
            ),
        )
        for response_type in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.api.add_gateway_response(
                f"Json{response_type.response_type}",
                type=response_type,
                templates={"application/json": _ERROR_TEMPLATE},
            )
        # The authentication refusals' status and headers, shared with the local gateway.
        for type_name, response in gateway_responses(auth.mode).items():
            self.api.add_gateway_response(
                f"Json{type_name}",
                type=apigw.ResponseType.of(type_name),
                status_code=str(response.status),
                response_headers={name: f"'{value}'" for name, value in response.headers.items()},
                templates={"application/json": _ERROR_TEMPLATE},
            )
        validator = self.api.add_request_validator(
            "Parameters", validate_request_parameters=True, validate_request_body=False
        )

        ingest_integration = apigw.LambdaIntegration(ingest)
        orders = self.api.root.add_resource("orders")
        orders.add_method("POST", ingest_integration, request_validator=validator)
        orders.add_resource("batch").add_method("POST", ingest_integration, request_validator=validator)
        orders.add_resource("{id}").add_method(
            "GET",
            apigw.LambdaIntegration(reader),
            request_validator=validator,
            request_parameters={"method.request.path.id": True},
        )

        self.plan = self.api.add_usage_plan(
            "UsagePlan",
            description="Per-key throttle and daily quota for orderpipe producers and clients",
            throttle=apigw.ThrottleSettings(rate_limit=settings.rate_limit, burst_limit=settings.burst_limit),
            quota=apigw.QuotaSettings(limit=settings.quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        # Each producer's key joins this plan (or a plan of its own): `orderpipe producers add`.

        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "Request parameters are validated by the gateway; bodies are validated by the ingest function "
            "against the one shared pydantic model, so errors name the field with the API's own status codes.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-COG4",
            "Every method has an authorizer: the orderpipe authorizer function (OAuth 2.0 access tokens "
            "from Cognito or an external OIDC issuer, scopes per route, producer revocation) or AWS_IAM; "
            "a Cognito user pool authorizer could not check revocation nor name the usage-plan key.",
        )
        if cloudwatch_role == "create":
            acknowledge(
                self.api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                "The account-level role API Gateway needs to write the access and execution logs; AWS-maintained.",
            )
        acknowledge(
            self.api,
            "AwsSolutions-APIG3",
            "No WAF web ACL by default (cost, and no browser traffic): authentication, the usage plan's throttle "
            "and quota and the function-side validation bound abuse. Attach a web ACL to the stage if needed.",
        )

    def _method_options(
        self, auth: AuthConfig, authorizer: lambda_.IFunction | None, ttl_seconds: int
    ) -> apigw.MethodOptions:
        if auth.mode == "iam":
            return apigw.MethodOptions(api_key_required=True, authorization_type=apigw.AuthorizationType.IAM)
        assert authorizer is not None, "jwt mode needs the authorizer function"
        return apigw.MethodOptions(
            api_key_required=True,
            authorization_type=apigw.AuthorizationType.CUSTOM,
            authorizer=apigw.RequestAuthorizer(
                self,
                "ProducerAuthorizer",
                handler=authorizer,
                identity_sources=[apigw.IdentitySource.header("Authorization")],
                results_cache_ttl=cdk.Duration.seconds(ttl_seconds),
            ),
        )
