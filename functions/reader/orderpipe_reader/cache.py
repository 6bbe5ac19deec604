"""The DynamoDB read cache: one item per order, expired by TTL.

DynamoDB deletes expired items lazily (up to days later) and moto never does, so an item whose
expiry has passed is treated as a miss here. Every failure is raised as CacheUnavailableError: the caller
degrades to Cassandra, the cache never fails a GET. A slow cache must not make reads slow either:
each call gets at most a second of the GET's deadline (a read) or half a second (the write-back).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from orderpipe_common.aws_calls import call_within, client_within
from orderpipe_common.deadlines import Deadline
from orderpipe_common.errors import DomainError
from orderpipe_common.model import Order
from orderpipe_common.tables import CACHE_EXPIRY_ATTRIBUTE, CACHE_ORDER_ATTRIBUTE, CACHE_PARTITION_KEY

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Time each cache call may take out of the GET's deadline: a read tolerates a slow network (500 ms
# more per answer); the write-back is best effort.
CACHE_READ_SECONDS = 1.0
CACHE_WRITE_SECONDS = 0.5


class CacheUnavailableError(DomainError):
    """The read cache failed; callers degrade to Cassandra."""


def _client_for(cap_seconds: float) -> Callable[[Deadline], DynamoDBClient]:
    return lambda deadline: client_within("dynamodb", deadline, cap_seconds=cap_seconds)


class OrderCache(Protocol):
    def get(self, order_id: uuid.UUID, deadline: Deadline) -> Order | None: ...
    def put(self, order: Order, deadline: Deadline) -> None: ...


class DynamoDbOrderCache:
    def __init__(self, *, table_name: str, ttl_seconds: int) -> None:
        self._table_name = table_name
        self._ttl_seconds = ttl_seconds

    def get(self, order_id: uuid.UUID, deadline: Deadline) -> Order | None:
        def get_item(dynamodb: DynamoDBClient) -> Any:
            key = {CACHE_PARTITION_KEY: {"S": str(order_id)}}
            return dynamodb.get_item(TableName=self._table_name, Key=key).get("Item")

        within = deadline.within(CACHE_READ_SECONDS)
        try:
            item = call_within(within, get_item, client_for=_client_for(CACHE_READ_SECONDS))
        except (BotoCoreError, ClientError) as error:
            raise CacheUnavailableError(f"cache read failed: {error}") from error
        if item is None:
            return None
        if int(item[CACHE_EXPIRY_ATTRIBUTE]["N"]) <= time.time():
            return None
        return Order.model_validate_json(item[CACHE_ORDER_ATTRIBUTE]["S"])

    def put(self, order: Order, deadline: Deadline) -> None:
        item = {
            CACHE_PARTITION_KEY: {"S": str(order.order_id)},
            CACHE_ORDER_ATTRIBUTE: {"S": order.model_dump_json()},
            CACHE_EXPIRY_ATTRIBUTE: {"N": str(int(time.time()) + self._ttl_seconds)},
        }
        within = deadline.within(CACHE_WRITE_SECONDS)
        try:
            call_within(
                within,
                lambda dynamodb: dynamodb.put_item(TableName=self._table_name, Item=item),
                client_for=_client_for(CACHE_WRITE_SECONDS),
            )
        except (BotoCoreError, ClientError) as error:
            raise CacheUnavailableError(f"cache write failed: {error}") from error
