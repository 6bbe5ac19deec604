"""Failure drills on the real local parts (a real Cassandra node, moto, the real handlers): nothing
acknowledged is lost. Each drill prints its counts (`pytest -s` shows them)."""

from __future__ import annotations

import pytest

from orderpipe_testkit.drills import scenarios

pytestmark = pytest.mark.cassandra


def test_cassandra_outage_under_load_loses_no_accepted_order(shared_runtime, cassandra_outage):
    # Given steady POSTs at 20/s
    # When Cassandra is stopped for a while and started again under them (then the DLQ redriven)
    report = scenarios.cassandra_outage(shared_runtime, cassandra_outage)
    print(report)
    # Then every POST got a 202, and every accepted order is readable
    assert report.accepted == report.sent > 0
    assert report.details["accepted while Cassandra was down"] > 0
    assert report.readable == report.accepted
    assert report.lost == 0


def test_poison_messages_alone_reach_the_dlq_and_their_batches_are_stored(shared_runtime):
    # Given valid orders with undecodable and schema-invalid messages mixed into their batches
    # When the pipeline has delivered and retried them
    report = scenarios.poison_messages(shared_runtime)
    print(report)
    # Then exactly the poison is in the DLQ, every valid order is readable, nothing is lost
    assert report.lost == 0
    assert report.readable == 40
    assert report.in_dlq == len(scenarios.poison_bodies())


def test_duplicate_deliveries_leave_one_unchanged_row_per_order(shared_runtime):
    # Given 30 orders stored once
    # When each message is delivered twice more
    report = scenarios.duplicate_delivery(shared_runtime)
    print(report)
    # Then there is still one row per order, unchanged, and nothing in the DLQ
    assert report.lost == 0
    assert report.readable == 30
    assert report.in_dlq == 0
    assert report.details["rows changed by a redelivery"] == 0


def test_producer_retries_with_one_idempotency_key_make_one_order(shared_runtime):
    # Given one order body and one Idempotency-Key
    # When it is posted 8 times at once and then 4 times in a row
    report = scenarios.producer_retries(shared_runtime)
    print(report)
    # Then every acceptance names the same order, one message was enqueued and one row stored
    assert report.details["distinct order ids"] == 1
    assert report.details["rows"] == 1
    assert report.lost == 0


def test_crash_of_the_writer_mid_batch_is_completed_by_redelivery(cassandra_endpoint):
    # Given 400 orders queued before the writer starts (large batches)
    # When the writer's processes are SIGKILLed after the first inserts of a batch
    report = scenarios.writer_crash(cassandra_endpoint)
    print(report)
    # Then redelivery stores every order exactly once, nothing in the DLQ
    assert report.lost == 0
    assert report.readable == 400
    assert report.in_dlq == 0
