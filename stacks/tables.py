"""DynamoDB tables: the reader's cache and ingest's idempotency records."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from orderpipe_common import tables


class Tables(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # Both hold only short-lived, re-creatable data (a cache and a one-hour idempotency window),
        # so they go with the stack.
        self.cache = dynamodb.TableV2(
            self,
            "Cache",
            partition_key=dynamodb.Attribute(
                name=tables.CACHE_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute=tables.CACHE_EXPIRY_ATTRIBUTE,
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.idempotency = dynamodb.TableV2(
            self,
            "Idempotency",
            partition_key=dynamodb.Attribute(
                name=tables.IDEMPOTENCY_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute=tables.IDEMPOTENCY_EXPIRY_ATTRIBUTE,
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
