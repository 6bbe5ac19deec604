"""Credential rotation during load, on the real local parts (issue 12): a secured Cassandra node
(TLS only, PasswordAuthenticator), the secret in moto, the whole local pipeline under steady POSTs.
`orderpipe drill rotation` runs the same drill on a node of its own."""

from __future__ import annotations

import pytest

from orderpipe_devenv.cassandra import CassandraCluster
from orderpipe_devenv.cassandra.source import CassandraEndpoint
from orderpipe_testkit.drills.rotation import credential_rotation

pytestmark = pytest.mark.cassandra


def test_rotating_the_password_under_load_then_restarting_the_node_loses_nothing(
    secured_endpoint: CassandraEndpoint, secured_node: CassandraCluster
) -> None:
    # Given the pipeline under steady POSTs (25/s, 3 streams), logging in as a role whose password is in a secret
    # When the operator changes the role's password (ALTER ROLE), puts the new one into the secret,
    # and the node restarts under the load (every function must log in again)
    report = credential_rotation(secured_endpoint, secured_node)
    print(report)
    # Then every POST got a 202, every accepted order reads back as posted, the table holds exactly
    # the accepted orders, and nothing is in the DLQ
    assert report.accepted == report.sent > 0
    assert report.readable == report.accepted
    assert report.lost == 0
    assert report.in_dlq == 0
    assert report.details["read back with other content"] == 0
    assert report.details["rows in the orders table"] == report.accepted
    assert report.details["role's connections on the node after the restart"] > 0
