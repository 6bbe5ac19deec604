"""Drill 5 (heavy: three Cassandra JVMs): not in the default run; `pytest -m heavy tests/drills`
or `orderpipe drill replication`."""

from __future__ import annotations

import pytest

from orderpipe_devenv import cassandra as local_cassandra
from orderpipe_devenv.processes import JavaNotFoundError, find_java
from orderpipe_testkit.drills.replication import run_replication_drill
from tests.fixtures.cassandra import cassandra_unavailable

pytestmark = [pytest.mark.cassandra, pytest.mark.heavy]


def test_one_node_of_three_down_under_load_loses_nothing():
    try:
        find_java()
        local_cassandra.fetch_jars()
    except (JavaNotFoundError, local_cassandra.CassandraError) as error:
        cassandra_unavailable(str(error))
    # Given three nodes, RF 3, LOCAL_QUORUM, and steady POSTs
    # When node 3 is stopped for 15 s and started again
    report = run_replication_drill()
    print(report)
    # Then every POST was accepted, reads and writes went on while it was down, nothing is lost
    assert report.accepted == report.sent > 0
    assert report.lost == 0
