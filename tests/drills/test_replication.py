"""Drill 5 (heavy: three Cassandra JVMs): not in the default run; `pytest -m heavy tests/drills`
or `orderpipe drill replication`."""

from __future__ import annotations

import pytest

from orderpipe_dev import cassandra_node as cn
from orderpipe_dev.drills.replication import run_replication_drill
from tests.fixtures.cassandra import cassandra_unavailable

pytestmark = [pytest.mark.cassandra, pytest.mark.heavy]


def test_one_node_of_three_down_under_load_loses_nothing():
    try:
        cn.find_java()
        cn.fetch_jars()
    except cn.CassandraError as error:
        cassandra_unavailable(str(error))
    # Given three nodes, RF 3, LOCAL_QUORUM, and steady POSTs
    # When node 3 is stopped for 15 s and started again
    report = run_replication_drill()
    print(report)
    # Then every POST was accepted, reads and writes went on while it was down, nothing is lost
    assert report.accepted == report.sent > 0
    assert report.lost == 0
