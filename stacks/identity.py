"""Who the producers are: the producers table and, by default, the Cognito user pool that issues them
OAuth 2.0 access tokens (client-credentials grant, resource server `orders` with scopes `write`,
`read`, `read-all`).

The producers table maps a credential principal (an app client's id, an external issuer's `sub`, or
an IAM principal ARN) to its producer, its state (active/revoked) and its usage-plan API key. It is
written by `orderpipe producers` and read by the authorizer function. With `orderpipe:authIssuer` the
tokens come from an external issuer instead, and no user pool is created.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from orderpipe_common import tables
from orderpipe_common.identity import RESOURCE_SERVER
from stacks.config import AuthConfig
from stacks.nag import acknowledge


class ProducerIdentity(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, auth: AuthConfig) -> None:
        super().__init__(scope, construct_id)
        self.auth = auth
        # The registry of who may send orders: kept when the stack goes, restorable to any second.
        self.producers = dynamodb.TableV2(
            self,
            "Producers",
            partition_key=dynamodb.Attribute(
                name=tables.PRODUCERS_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.user_pool: cognito.UserPool | None = None
        self.token_url: str | None = None
        self.issuer: str | None = auth.issuer
        self.jwks_url: str | None = auth.jwks_url
        if auth.cognito:
            self._cognito(auth)

    def _cognito(self, auth: AuthConfig) -> None:
        stack = cdk.Stack.of(self)
        self.user_pool = cognito.UserPool(
            self,
            "Pool",
            user_pool_name=f"{stack.stack_name}-producers",
            self_sign_up_enabled=False,  # producers are app clients made by operators, never users
            sign_in_aliases=cognito.SignInAliases(username=True),
            password_policy=cognito.PasswordPolicy(
                min_length=16,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            account_recovery=cognito.AccountRecovery.NONE,
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.user_pool.add_resource_server(
            "Orders",
            identifier=RESOURCE_SERVER,
            user_pool_resource_server_name="orderpipe orders",
            scopes=[
                cognito.ResourceServerScope(scope_name="write", scope_description="submit orders"),
                cognito.ResourceServerScope(
                    scope_name="read", scope_description="read the producer's own orders"
                ),
                cognito.ResourceServerScope(
                    scope_name="read-all", scope_description="read every producer's orders"
                ),
            ],
        )
        prefix = auth.cognito_domain_prefix or cdk.Fn.join(
            "-", [stack.stack_name.lower(), cdk.Aws.ACCOUNT_ID]
        )
        domain = self.user_pool.add_domain(
            "Domain", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix)
        )
        self.token_url = f"{domain.base_url()}/oauth2/token"
        self.issuer = self.user_pool.user_pool_provider_url
        self.jwks_url = f"{self.user_pool.user_pool_provider_url}/.well-known/jwks.json"
        for rule, reason in (
            (
                "AwsSolutions-COG2",
                "No users sign in: producers are app clients with the client-credentials grant, which has no MFA step.",
            ),
            (
                "AwsSolutions-COG3",
                "Threat protection (advanced security) acts on user sign-ins; this pool has app clients only.",
            ),
            (
                "AwsSolutions-COG8",
                "The Plus feature plan adds user threat protection; this pool has no users, only app clients.",
            ),
        ):
            acknowledge(self.user_pool, rule, reason)
