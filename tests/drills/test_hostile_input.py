"""Drill 6: hostile input against the API over HTTP (schemathesis from docs/openapi.json, plus
hand-written cases): no 5xx, no hang, clear 4xx."""

from __future__ import annotations

import pytest

from orderpipe_testkit.drills import hostile

pytestmark = pytest.mark.cassandra


@pytest.mark.parametrize("case", hostile.hand_written_cases(), ids=lambda case: case.name)
def test_each_hand_written_hostile_request_gets_a_clear_4xx(shared_runtime, case):
    # Given the API, When a hostile request is sent
    with hostile.api_client(shared_runtime, timeout=hostile.REQUEST_TIMEOUT_SECONDS) as api:
        response = api.request(case.method, case.path, content=case.body, headers=dict(case.headers))
    # Then it gets the expected 4xx with the deployed API's error body: a code and what is wrong
    assert response.status_code in case.expected, response.text[:300]
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error


def test_5000_generated_requests_get_no_5xx_and_no_hang(shared_runtime):
    # Given requests generated from the OpenAPI document (valid and invalid, every operation)
    # When at least 5,000 of them are sent, each with a 10 s timeout
    statuses, failures = hostile.run_generated(shared_runtime, requests=5000, time_limit_seconds=480)
    print(f"drill hostile: generated={sum(statuses.values())} answers={dict(sorted(statuses.items()))}")
    # Then every one got an answer, none a 5xx
    assert sum(statuses.values()) >= 5000
    assert not failures, failures[:5]
