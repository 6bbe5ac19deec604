"""The producers table: which credential principal is which producer, active or revoked, and its
usage-plan API key. Written by `orderpipe producers`, read by the authorizer on every decision that
API Gateway has not cached (so a revocation counts within the authorizer cache TTL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from orderpipe_authorizer.settings import get_settings
from orderpipe_common.aws_calls import call_within, client_within
from orderpipe_common.deadlines import Deadline
from orderpipe_common.errors import DomainError
from orderpipe_common.per_process import per_process
from orderpipe_common.tables import (
    PRODUCER_ACTIVE,
    PRODUCERS_NAME_ATTRIBUTE,
    PRODUCERS_PARTITION_KEY,
    PRODUCERS_STATUS_ATTRIBUTE,
    PRODUCERS_USAGE_KEY_ATTRIBUTE,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


# One look-up's attempt takes at most this; attempts repeat while one fits before the deadline.
REGISTRY_CALL_SECONDS = 1.0


class RegistryUnavailableError(DomainError):
    """The producers table cannot be read: no decision can be made right now."""


@dataclass(frozen=True)
class Producer:
    name: str
    active: bool
    usage_key: str | None


class ProducerRegistry(Protocol):
    def find(self, principal: str, deadline: Deadline) -> Producer | None: ...


def _client_for(deadline: Deadline) -> DynamoDBClient:
    client: DynamoDBClient = client_within("dynamodb", deadline, cap_seconds=REGISTRY_CALL_SECONDS)
    return client


class DynamoDbProducerRegistry:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def find(self, principal: str, deadline: Deadline) -> Producer | None:
        def get_item(dynamodb: DynamoDBClient) -> Any:
            return dynamodb.get_item(
                TableName=self._table_name,
                Key={PRODUCERS_PARTITION_KEY: {"S": principal}},
                ConsistentRead=True,  # a revocation counts from the next uncached decision
            ).get("Item")

        try:
            item = call_within(deadline, get_item, client_for=_client_for)
        except (BotoCoreError, ClientError) as error:
            raise RegistryUnavailableError(f"producers table unavailable: {type(error).__name__}") from error
        if item is None:
            return None
        return Producer(
            name=item[PRODUCERS_NAME_ATTRIBUTE]["S"],
            active=item.get(PRODUCERS_STATUS_ATTRIBUTE, {}).get("S") == PRODUCER_ACTIVE,
            usage_key=item.get(PRODUCERS_USAGE_KEY_ATTRIBUTE, {}).get("S"),
        )


@per_process
def get_registry() -> ProducerRegistry:
    return DynamoDbProducerRegistry(get_settings().producers_table_name)
