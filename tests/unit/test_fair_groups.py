"""The ingest's fair-queue group ids fit what SQS accepts as a MessageGroupId, for every producer id.

SQS refuses a MessageGroupId longer than 128 characters or with a character other than alphanumeric
and punctuation; a refused call would answer the producer 503 on every retry. No network: the SQS
client is a fake that validates group ids as SQS documents them.
"""

from __future__ import annotations

import re

import pytest

from orderpipe_common.deadlines import Deadline
from orderpipe_common.identity import PRODUCER_PATTERN
from orderpipe_ingest import publisher
from orderpipe_ingest.publisher import SqsPublisher, fair_group_id
from tests.unit.fake_sqs import SQS_GROUP_ID, GroupCheckingSqs

LONGEST_NAME = "p" * 256  # PRODUCER_PATTERN's maximum
ROLE_ARN = "arn:aws:iam::123456789012:role/" + "/".join(["team"] * 40) + "/order-feed"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> GroupCheckingSqs:
    fake = GroupCheckingSqs()
    monkeypatch.setattr(publisher, "sqs_client_for", lambda _deadline: fake)
    return fake


def test_every_character_a_producer_name_may_hold_is_one_sqs_takes_in_a_group_id() -> None:
    # Given the characters PRODUCER_PATTERN admits after the first (the first is alphanumeric)
    allowed_class = re.search(r"\]\[(.+?)\]\{", PRODUCER_PATTERN)
    assert allowed_class is not None
    admitted = [c for c in map(chr, range(32, 127)) if re.fullmatch(f"[{allowed_class[1]}]", c)]
    # Then each of them is alphanumeric or punctuation, as SQS requires of a MessageGroupId
    assert admitted
    assert all(SQS_GROUP_ID.fullmatch(c) for c in admitted)


@pytest.mark.parametrize("producer", ["producer-a", "a" * 128, "arn:aws:iam::123456789012:role/feed"])
def test_a_producer_id_of_at_most_128_characters_is_its_own_group(producer: str) -> None:
    # Given a producer id SQS takes as it is
    # Then it is the group id unchanged
    assert fair_group_id(producer) == producer


@pytest.mark.parametrize("producer", ["a" * 129, LONGEST_NAME, ROLE_ARN])
def test_a_longer_producer_id_gets_a_stable_group_of_at_most_128_characters(producer: str) -> None:
    # Given a producer id longer than SQS's 128 characters
    assert len(producer) > 128
    # When its group id is computed twice
    first, second = fair_group_id(producer), fair_group_id(producer)
    # Then it is the same both times, within SQS's limit and characters
    assert first == second
    assert len(first) <= 128
    assert SQS_GROUP_ID.fullmatch(first)


def test_distinct_long_producers_get_distinct_groups() -> None:
    # Given long producer ids that differ only in their last character, and the 129- and 256-character ones
    base = "b" * 255
    producers = [base + c for c in "abcdefghij"] + ["a" * 129, LONGEST_NAME, ROLE_ARN]
    # Then no two of them share a group, and none shares one with a short producer's own id
    groups = {fair_group_id(producer) for producer in producers}
    assert len(groups) == len(producers)
    assert not groups & {"producer-a", "a" * 128}


def test_a_producer_id_with_a_character_sqs_refuses_gets_a_hashed_group() -> None:
    # Given a producer id with a space (never a producer name, but no id reaches SQS unchecked)
    # Then its group is a digest SQS takes
    assert SQS_GROUP_ID.fullmatch(fair_group_id("a b"))
    assert fair_group_id("a b") != fair_group_id("a_b")


def test_the_longest_producer_name_is_sent_in_its_hashed_group_single_and_batched(
    sqs: GroupCheckingSqs,
) -> None:
    # Given a publisher sending for the 256-character producer
    sender = SqsPublisher("http://sqs/queue", Deadline.after(5))
    # When it sends one order and a batch of three
    sender.send("{}", group=LONGEST_NAME)
    failed = sender.send_batch({"0": "{}", "1": "{}", "2": "{}"}, group=LONGEST_NAME)
    # Then SQS took every message, all in the producer's one group of at most 128 characters
    assert failed == []
    assert len(sqs.group_ids) == 4
    assert set(sqs.group_ids) == {fair_group_id(LONGEST_NAME)}
    assert len(sqs.group_ids[0]) <= 128


def test_without_fair_groups_no_group_id_is_sent(sqs: GroupCheckingSqs) -> None:
    # Given a publisher for an SQS endpoint that refuses group ids on standard queues
    sender = SqsPublisher("http://sqs/queue", Deadline.after(5), fair_groups=False)
    # When it sends for a producer
    sender.send("{}", group="producer-a")
    # Then no group id went out
    assert sqs.group_ids == []
