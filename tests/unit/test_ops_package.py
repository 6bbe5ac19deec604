"""The ops package stands alone: what it knows of the envelope agrees with the functions' code."""

from __future__ import annotations

import json
import re
import typing

import pytest

from orderpipe_common import envelope, tuning
from orderpipe_ops import queues
from orderpipe_testkit.sample_orders import make_order, message_body


def test_the_shape_check_knows_every_envelope_version_the_writer_reads():
    # Given the versions the writer's envelope model accepts
    writer_versions = set(envelope.READABLE_SCHEMA_VERSIONS)
    assert writer_versions == {
        version
        for model in (envelope.OrderEnvelopeV1, envelope.OrderEnvelopeV2)
        for version in typing.get_args(model.model_fields["schema_version"].annotation)
    }
    # Then the ops package's shape check knows exactly those
    assert writer_versions == set(queues.KNOWN_SCHEMA_VERSIONS)


def test_the_shape_check_tells_poison_from_an_order_as_far_as_shape_goes():
    # Given a real envelope and three kinds of poison
    order = make_order(3)
    cases = {
        message_body(order): str(order.order_id),
        "not json": None,
        json.dumps({"schema_version": 99, "order": {"order_id": str(order.order_id)}}): None,
        json.dumps({"schema_version": 1, "order": {"customer_id": "c"}}): None,
    }
    for body, expected_id in cases.items():
        # When each is explained by shape alone
        order_id, _order, reason = queues._explain_shape(body)
        # Then only the real envelope has an id, and each reason says what it found
        assert order_id == expected_id
        assert reason.startswith("readable" if expected_id else "unreadable envelope")


def test_the_producer_administration_agrees_with_the_functions_on_names_and_scopes():
    from orderpipe_common import identity, tables
    from orderpipe_ops import producers

    assert producers.PRODUCERS_PARTITION_KEY == tables.PRODUCERS_PARTITION_KEY
    assert producers.PRODUCERS_NAME_ATTRIBUTE == tables.PRODUCERS_NAME_ATTRIBUTE
    assert producers.PRODUCERS_STATUS_ATTRIBUTE == tables.PRODUCERS_STATUS_ATTRIBUTE
    assert producers.PRODUCERS_USAGE_KEY_ATTRIBUTE == tables.PRODUCERS_USAGE_KEY_ATTRIBUTE
    assert (producers.PRODUCER_ACTIVE, producers.PRODUCER_REVOKED) == (
        tables.PRODUCER_ACTIVE,
        tables.PRODUCER_REVOKED,
    )
    assert producers.PRODUCER_PATTERN == identity.PRODUCER_PATTERN
    assert {producers.SCOPE_WRITE, producers.SCOPE_READ, producers.SCOPE_READ_ALL} == set(identity.ALL_SCOPES)


def test_the_outage_budget_is_computed_as_the_tuning_computes_it():
    # Given a few receive counts and visibility timeouts
    for receives, visibility in [(1, 30), (2, 12), (21, 180), (5, 900)]:
        budget = queues.QueueBudget(
            visibility_timeout_seconds=visibility,
            max_receive_count=receives,
            queue_retention_seconds=86_400,
            dlq_retention_seconds=2 * 86_400,
        )
        # Then the operator's figure and the stack's agree
        assert budget.outage_budget_seconds == tuning.outage_budget_seconds(receives, visibility)


def test_a_budget_without_retentions_still_states_the_outage_budget():
    # Given an endpoint that reports no retention (ElasticMQ keeps messages until deleted)
    budget = queues.QueueBudget(
        visibility_timeout_seconds=180,
        max_receive_count=21,
        queue_retention_seconds=None,
        dlq_retention_seconds=None,
    )
    # Then the outage budget is known and nothing is flagged for want of a retention
    assert budget.outage_budget_seconds == 3600
    assert budget.problems(age_alarm_seconds=300) == []


def test_the_producers_help_names_the_authorizer_cache_setting_the_tuning_has():
    from orderpipe_ops.commands import producers as producers_command

    # Given the setting and default `orderpipe producers --help` names for the revocation delay
    setting = producers_command.AUTHORIZER_CACHE_TTL_SETTING
    # Then the pipeline tuning (the stack's orderpipe:tuning, `orderpipe run --tuning`) has it, with that default
    assert getattr(tuning.PipelineTuning(), setting) == producers_command.AUTHORIZER_CACHE_TTL_DEFAULT_SECONDS
    assert f"orderpipe run --tuning {setting}=60" in producers_command.WHERE_PRODUCERS


@pytest.mark.parametrize("name", ["acme", "team/acme:eu", "p" * 256, "a+b=c,d.e@f-g_h"])
def test_every_producer_name_gives_an_app_client_name_cognito_takes(name):
    from orderpipe_common.identity import PRODUCER_PATTERN
    from orderpipe_ops.producers import cognito_client_name

    # Given a producer name `orderpipe producers add` accepts
    assert re.fullmatch(PRODUCER_PATTERN, name)
    # Then its app client's name is one Cognito's CreateUserPoolClient takes: 1-128 of [\w\s+=,.@-]
    assert re.fullmatch(r"[\w\s+=,.@-]{1,128}", cognito_client_name(name))
    assert cognito_client_name(name) == name[:128].replace("/", "-").replace(":", "-")
