"""The queue budgets of PipelineTuning: stated, defaulted and validated together."""

from __future__ import annotations

import pytest

from orderpipe_common.tuning import DEFAULT_TUNING


def test_the_default_survives_an_hour_of_cassandra_outage_and_alarms_well_before():
    # Given the default tuning (what the stack deploys)
    DEFAULT_TUNING.validate()
    budget = DEFAULT_TUNING.cassandra_outage_budget_seconds
    # Then orders reach the DLQ only after an hour of outage, the age alarm comes at least 2x earlier,
    # and the queue keeps messages longer than the budget but shorter than its DLQ
    assert budget == (DEFAULT_TUNING.max_receive_count - 1) * DEFAULT_TUNING.visibility_timeout_seconds
    assert budget >= 3600
    assert DEFAULT_TUNING.alarm_oldest_message_age_seconds <= budget / 2
    assert budget < DEFAULT_TUNING.queue_retention_days * 86_400
    assert DEFAULT_TUNING.queue_retention_days < DEFAULT_TUNING.dlq_retention_days


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"queue_retention_days": 14}, "queue_retention_days must be shorter than dlq_retention_days"),
        ({"dlq_retention_days": 15}, "at most 14"),
        ({"alarm_oldest_message_age_seconds": 2000}, "at most half the Cassandra outage budget"),
        (
            {"max_receive_count": 1000, "writer_timeout_seconds": 300, "queue_retention_days": 1},
            "orders expire in the queue before the DLQ",
        ),
    ],
)
def test_budgets_that_contradict_each_other_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        DEFAULT_TUNING.with_overrides(overrides)
