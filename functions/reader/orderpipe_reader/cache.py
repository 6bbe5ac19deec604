"""The DynamoDB read cache: one item per order, expired by TTL.

DynamoDB deletes expired items lazily (up to days later) and moto never does, so an item whose
expiry has passed is treated as a miss here. Every failure is raised as CacheUnavailableError: the caller
degrades to Cassandra, the cache never fails a GET.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from orderpipe_common.errors import DomainError
from orderpipe_common.model import Order
from orderpipe_common.per_process import per_process
from orderpipe_common.tables import CACHE_EXPIRY_ATTRIBUTE, CACHE_ORDER_ATTRIBUTE, CACHE_PARTITION_KEY

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# A slow cache must not make reads slow: fail fast and fall through to Cassandra.
_CACHE_CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=1, retries={"max_attempts": 2, "mode": "standard"}
)


class CacheUnavailableError(DomainError):
    """The read cache failed; callers degrade to Cassandra."""


class OrderCache(Protocol):
    def get(self, order_id: uuid.UUID) -> Order | None: ...
    def put(self, order: Order) -> None: ...


@per_process
def _dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=_CACHE_CLIENT_CONFIG)


class DynamoDbOrderCache:
    def __init__(self, *, table_name: str, ttl_seconds: int) -> None:
        self._table_name = table_name
        self._ttl_seconds = ttl_seconds

    def get(self, order_id: uuid.UUID) -> Order | None:
        try:
            item = (
                _dynamodb_client()
                .get_item(TableName=self._table_name, Key={CACHE_PARTITION_KEY: {"S": str(order_id)}})
                .get("Item")
            )
        except (BotoCoreError, ClientError) as error:
            raise CacheUnavailableError(f"cache read failed: {error}") from error
        if item is None:
            return None
        if int(item[CACHE_EXPIRY_ATTRIBUTE]["N"]) <= time.time():
            return None
        return Order.model_validate_json(item[CACHE_ORDER_ATTRIBUTE]["S"])

    def put(self, order: Order) -> None:
        try:
            _dynamodb_client().put_item(
                TableName=self._table_name,
                Item={
                    CACHE_PARTITION_KEY: {"S": str(order.order_id)},
                    CACHE_ORDER_ATTRIBUTE: {"S": order.model_dump_json()},
                    CACHE_EXPIRY_ATTRIBUTE: {"N": str(int(time.time()) + self._ttl_seconds)},
                },
            )
        except (BotoCoreError, ClientError) as error:
            raise CacheUnavailableError(f"cache write failed: {error}") from error
