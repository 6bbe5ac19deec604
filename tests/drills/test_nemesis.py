"""The nemesis soak, short (2 minutes): steady load while seeded faults hit every dependency, writer
processes and the Cassandra node; then nothing lost, nothing stored twice, no 5xx, no timeout.
`orderpipe drill nemesis --minutes 10` is the long run (docs/drills/nemesis.json)."""

from __future__ import annotations

import pytest

from orderpipe_testkit.drills.nemesis import run_nemesis
from tests.fixtures.cassandra import wait_until_queryable

pytestmark = pytest.mark.cassandra

# A seed whose two minutes deal six kinds of fault, both kills among them.
SEED = 11


def test_nemesis_soak_loses_nothing_and_answers_every_request(
    cassandra_endpoint, embedded_cassandra_if_any, cql_session, toxiproxy
):
    # Given the pipeline with Toxiproxy in front of Cassandra, SQS and DynamoDB, under steady load
    # When two minutes of seeded faults hit it (node kills only where the node is ours to kill)
    try:
        report = run_nemesis(
            cassandra_endpoint,
            contact_points=list(cassandra_endpoint.contact_points),
            port=cassandra_endpoint.port,
            cluster=embedded_cassandra_if_any,
            minutes=2,
            seed=SEED,
        )
    finally:
        wait_until_queryable(cql_session, timeout_seconds=120)  # later tests share the node
    print(report)
    # Then every promise held: nothing lost or duplicated, every request answered, no 5xx, no timeout
    assert report.passed, report.failures
    assert report.accepted > 0
    assert report.lost == report.duplicated == 0
    assert report.readable == report.accepted
    assert len(report.faults) >= 5
    assert len({fault.fault.kind for fault in report.faults}) >= 4
