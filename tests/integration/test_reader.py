"""The reader on real parts: DynamoDB cache (moto server) in front of a real Cassandra node."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from orderpipe_common.identity import authorizer_context
from orderpipe_common.model import Order
from orderpipe_common.tables import CACHE_EXPIRY_ATTRIBUTE, CACHE_ORDER_ATTRIBUTE, CACHE_PARTITION_KEY
from orderpipe_devenv.aws.resources import Table
from orderpipe_devenv.lambda_events import (
    LocalLambdaContext,
    ProxyResponse,
    proxy_response,
    rest_proxy_event,
    sqs_event_from_bodies,
)
from orderpipe_reader import handler as reader
from orderpipe_testkit.process_state import reset_process_state
from orderpipe_testkit.sample_orders import SAMPLE_PRODUCER, make_order, message_body
from orderpipe_writer import handler as writer

pytestmark = pytest.mark.cassandra


@pytest.fixture
def reader_env(
    monkeypatch: pytest.MonkeyPatch, cassandra_env: dict[str, str], cache_table: Table
) -> Iterator[Table]:
    monkeypatch.setenv("CACHE_TABLE_NAME", cache_table.name)
    monkeypatch.setenv("CACHE_TTL_SECONDS", "300")
    reset_process_state()
    yield cache_table
    reset_process_state()


def get_order(order_id: object, *, producer: str = SAMPLE_PRODUCER, read_all: bool = False) -> ProxyResponse:
    scopes = ["orders/read", *(["orders/read-all"] if read_all else [])]
    event = rest_proxy_event(
        "GET",
        f"/orders/{order_id}",
        resource="/orders/{order_id}",
        authorizer=authorizer_context(producer, scopes),
    )
    return proxy_response(reader.lambda_handler(event, LocalLambdaContext(function_name="orderpipe-reader")))


def write(order: Order) -> None:
    response = writer.lambda_handler(sqs_event_from_bodies([message_body(order)]), LocalLambdaContext())
    assert response == {"batchItemFailures": []}


def cached_item(dynamodb_client, table: Table, order: Order) -> dict | None:
    return dynamodb_client.get_item(
        TableName=table.name, Key={CACHE_PARTITION_KEY: {"S": str(order.order_id)}}
    ).get("Item")


def test_second_read_is_served_by_the_cache(reader_env, orders_session, dynamodb_client):
    # Given an order written by the writer
    order = make_order(4000, with_address=True)
    write(order)
    # When it is read once (a miss: from Cassandra, then cached)...
    first = get_order(order.order_id)
    # ...and its row is deleted from Cassandra before the second read
    orders_session.execute("DELETE FROM orders WHERE order_id=%s", (order.order_id,))
    second = get_order(order.order_id)
    # Then both reads answer 200 with the same body, equal to the order (exact Decimals and timestamp)
    assert first.status == second.status == 200
    assert first.body == second.body
    assert Order.model_validate_json(first.body) == order
    assert cached_item(dynamodb_client, reader_env, order) is not None


def test_not_found_is_not_cached(reader_env):
    # Given an accepted order that the writer has not written yet
    order = make_order(4100)
    # When it is polled before and after it is written
    before = get_order(order.order_id)
    write(order)
    after = get_order(order.order_id)
    # Then the first poll is 404 with a Retry-After hint, and the next sees the order (no negative caching)
    assert before.status == 404
    assert int(before.headers["retry-after"]) >= 1
    assert after.status == 200
    assert Order.model_validate_json(after.body) == order


def test_an_expired_cache_item_is_a_miss_and_is_refreshed(reader_env, dynamodb_client):
    # Given an order in Cassandra and a stale, expired copy of it in the cache
    order = make_order(4200)
    write(order)
    stale = order.model_copy(update={"customer_id": "stale-copy"})
    dynamodb_client.put_item(
        TableName=reader_env.name,
        Item={
            CACHE_PARTITION_KEY: {"S": str(order.order_id)},
            CACHE_ORDER_ATTRIBUTE: {"S": stale.model_dump_json()},
            CACHE_EXPIRY_ATTRIBUTE: {"N": str(int(time.time()) - 10)},
        },
    )
    # When it is read
    response = get_order(order.order_id)
    # Then it comes from Cassandra, and the cache now holds the fresh copy with a future expiry
    assert response.status == 200
    assert Order.model_validate_json(response.body) == order
    item = cached_item(dynamodb_client, reader_env, order)
    assert item is not None
    assert Order.model_validate_json(item[CACHE_ORDER_ATTRIBUTE]["S"]) == order
    assert int(item[CACHE_EXPIRY_ATTRIBUTE]["N"]) > time.time()


def test_dynamodb_unreachable_still_reads_from_cassandra(reader_env, monkeypatch):
    # Given an order in Cassandra and a cache endpoint where nothing listens
    order = make_order(4300)
    write(order)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    reset_process_state()
    # When it is read
    response = get_order(order.order_id)
    # Then the GET still answers 200 with the order
    assert response.status == 200
    assert Order.model_validate_json(response.body) == order


def test_cassandra_down_cache_hit_is_200_and_miss_is_503(reader_env, cassandra_outage):
    # Given one order read once (so cached), and one never read
    cached, uncached = make_order(4400), make_order(4401)
    write(cached)
    write(uncached)
    assert get_order(cached.order_id).status == 200
    # When Cassandra stops
    cassandra_outage.stop()
    hit = get_order(cached.order_id)
    miss = get_order(uncached.order_id)
    # Then the cached order is still served, and the miss is a 503 with Retry-After, never a 500
    assert hit.status == 200
    assert Order.model_validate_json(hit.body) == cached
    assert miss.status == 503
    assert int(miss.headers["retry-after"]) >= 1
    assert miss.json()["error"]["code"] == "service_unavailable"


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1234", "g" * 32, "%00"])
def test_malformed_id_is_400_naming_the_field(reader_env, bad_id):
    response = get_order(bad_id)
    assert response.status == 400
    assert response.json()["error"]["fields"][0]["field"] == "order_id"


def test_unknown_id_is_404(reader_env):
    assert get_order(uuid.uuid4()).status == 404


def test_another_producers_order_is_404_from_cassandra_and_from_the_cache(reader_env, dynamodb_client):
    # Given an order of one producer, written, not yet cached
    order = make_order(4100, producer="owner")
    write(order)
    # When another producer reads it (a cache miss, the row is in Cassandra)
    denied = get_order(order.order_id, producer="intruder")
    # Then it is the same 404 as an unknown order, and the denied read did not fill the cache
    unknown = get_order(uuid.uuid4(), producer="intruder")
    assert denied.status == unknown.status == 404
    assert denied.json()["error"]["code"] == unknown.json()["error"]["code"]
    assert cached_item(dynamodb_client, reader_env, order) is None
    # When the owner reads it (now cached), Then the intruder is still refused on the cache hit
    assert get_order(order.order_id, producer="owner").json()["producer"] == "owner"
    assert cached_item(dynamodb_client, reader_env, order) is not None
    assert get_order(order.order_id, producer="intruder").status == 404
    # ...and a read-all caller reads it
    assert get_order(order.order_id, producer="auditor", read_all=True).json()["producer"] == "owner"


def test_a_request_without_identity_is_401(reader_env):
    event = rest_proxy_event("GET", f"/orders/{uuid.uuid4()}", resource="/orders/{order_id}")
    answer = proxy_response(
        reader.lambda_handler(event, LocalLambdaContext(function_name="orderpipe-reader"))
    )
    assert answer.status == 401
    assert answer.json()["error"]["code"] == "unauthenticated"
