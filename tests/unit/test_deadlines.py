"""Deadlines from the invocation and AWS calls sized to them (no network: calls are fakes)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from orderpipe_common import aws_calls
from orderpipe_common.deadlines import Deadline, batch_reserve_seconds
from orderpipe_devenv.lambda_events import LocalLambdaContext


def test_the_deadline_is_the_budget_or_the_timeout_minus_the_reserve_whichever_is_sooner():
    # Given a function with 10 s left and an answer budget of 2 s
    deadline = Deadline.of_invocation(
        LocalLambdaContext(timeout_seconds=10), reserve_seconds=0.5, budget_seconds=2
    )
    # Then the budget decides; with only 1 s left, the timeout minus the reserve does
    assert 1.9 < deadline.remaining() <= 2.0
    late = Deadline.of_invocation(
        LocalLambdaContext(timeout_seconds=1), reserve_seconds=0.5, budget_seconds=2
    )
    assert 0.4 < late.remaining() <= 0.5


def test_a_batch_keeps_back_a_tenth_of_its_time_between_a_quarter_second_and_three_seconds():
    assert batch_reserve_seconds(30) == 3.0
    assert batch_reserve_seconds(5) == 0.5
    assert batch_reserve_seconds(1) == 0.25
    assert batch_reserve_seconds(900) == 3.0


def test_a_call_gets_the_largest_timeout_that_fits_its_cap_and_the_time_left():
    # An attempt is connect (a third of the read timeout, at most 0.5 s) plus read
    assert aws_calls.read_timeout_within(Deadline.after(10), 1.0) == 0.75
    assert aws_calls.read_timeout_within(Deadline.after(10), 1.5) == 1.0
    assert aws_calls.read_timeout_within(Deadline.after(0.9), 5.0) == 0.5
    # Past the deadline, one last short attempt
    assert aws_calls.read_timeout_within(Deadline.after(0), 5.0) == 0.25


def client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Call")


def _timeout() -> ReadTimeoutError:
    return ReadTimeoutError(endpoint_url="http://sqs")


def test_transient_failures_are_retried_while_an_attempt_fits_then_the_last_error_is_raised():
    # Given a call that always times out, and a deadline 1 s away
    calls: list[float] = []

    def times_out(_client: object) -> None:
        calls.append(time.monotonic())
        raise _timeout()

    deadline = Deadline.after(1.0)
    # When it is called within the deadline
    with pytest.raises(ReadTimeoutError):
        aws_calls.call_within(
            deadline, times_out, client_for=lambda _d: object(), sleep=lambda s: time.sleep(0.2)
        )
    # Then it was tried more than once, and given up when no attempt fitted any more
    assert len(calls) >= 2
    assert deadline.remaining() < aws_calls.MIN_ATTEMPT_SECONDS + 0.2


def test_a_client_error_that_retrying_cannot_fix_is_raised_at_once():
    refused = client_error("AccessDenied", 403)
    calls = []

    def denied(_client: object) -> None:
        calls.append(1)
        raise refused

    with pytest.raises(ClientError):
        aws_calls.call_within(Deadline.after(5), denied, client_for=lambda _d: object())
    assert calls == [1]


def test_throttling_and_server_errors_are_transient():
    throttled = client_error("ThrottlingException", 400)
    broken = client_error("InternalFailure", 500)
    invalid = client_error("InvalidParameterValue", 400)
    assert aws_calls.is_transient(throttled)
    assert aws_calls.is_transient(broken)
    assert aws_calls.is_transient(_timeout())
    assert not aws_calls.is_transient(invalid)
