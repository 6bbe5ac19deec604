"""The schema custom resource's Delete succeeds whatever the environment (finding 8)."""

from __future__ import annotations

import pytest

from orderpipe_devenv.lambda_events import LocalLambdaContext
from orderpipe_schema.handler import lambda_handler


def test_delete_succeeds_without_loading_settings(
    monkeypatch: pytest.MonkeyPatch, lambda_context: LocalLambdaContext
) -> None:
    # Given an environment the schema settings would refuse (no contact points, a bad keyspace),
    for name in ("CASSANDRA_CONTACT_POINTS", "CASSANDRA_LOCAL_DC", "CASSANDRA_REPLICATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CASSANDRA_KEYSPACE", "Not-A-Keyspace")
    # when CloudFormation deletes the resource, then the handler answers with the same physical id.
    answer = lambda_handler(
        {
            "RequestType": "Delete",
            "PhysicalResourceId": "orderpipe-schema-orderpipe",
            "ResourceProperties": {},
        },
        lambda_context,
    )
    assert answer == {"PhysicalResourceId": "orderpipe-schema-orderpipe"}


def test_create_with_a_broken_environment_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, lambda_context: LocalLambdaContext
) -> None:
    from orderpipe_common.settings import SettingsError

    monkeypatch.delenv("CASSANDRA_CONTACT_POINTS", raising=False)
    with pytest.raises(SettingsError, match="CASSANDRA_CONTACT_POINTS is not set"):
        lambda_handler({"RequestType": "Create", "ResourceProperties": {}}, lambda_context)
