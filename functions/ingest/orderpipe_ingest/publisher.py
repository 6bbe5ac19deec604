"""Putting messages on the orders queue.

The logic talks to `QueuePublisher` (a Protocol), so it is unit-testable without a network; the
deployed function uses an `SqsPublisher` per request, bound to the request's deadline, over boto3
clients created once per process (orderpipe_common.aws_calls). The endpoint comes from boto3's
standard configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`), so moto or ElasticMQ work with
no code difference.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from orderpipe_common.aws_calls import call_within, client_within
from orderpipe_common.deadlines import Deadline
from orderpipe_common.errors import DomainError
from orderpipe_common.observability import REQUEST_ID_ATTRIBUTE, logger, request_id
from orderpipe_ingest.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

# SendMessageBatch takes at most this many entries per call.
SQS_BATCH_LIMIT = 10
# One SQS attempt (connect + answer) at most; attempts are repeated while the request's deadline allows.
SQS_CALL_SECONDS = 1.5

# SQS takes a MessageGroupId of at most 128 characters, alphanumeric and punctuation (exactly
# string.punctuation); anything else fails the whole call, on every retry. Producer names
# (identity.PRODUCER_PATTERN: alphanumeric and ._:@/+=,-) and IAM principal ARNs only use those
# characters, but a name may be 256 characters long and an ARN longer.
MESSAGE_GROUP_ID_MAX_CHARACTERS = 128
# A producer id used as is: SQS's characters, at most 128 of them, starting alphanumeric (as every
# producer name and every ARN does), so it is never mistaken for a hashed group id.
_VERBATIM_GROUP = re.compile(
    f"[A-Za-z0-9][A-Za-z0-9{re.escape(string.punctuation)}]{{0,{MESSAGE_GROUP_ID_MAX_CHARACTERS - 1}}}"
)
# Any other producer's group: this prefix and the SHA-256 hex digest of its id (72 characters). The
# same producer always gets the same group, distinct producers distinct groups (barring a SHA-256
# collision); `#` cannot start a verbatim group, so a hashed group never equals a producer's own id.
HASHED_GROUP_PREFIX = "#sha256:"


class QueueUnavailableError(DomainError):
    """The queue could not be reached or refused the whole call before the deadline.

    Nothing of that call is accepted. When the queue took a message but its answer was lost, the
    message is on the queue anyway: a retry with the same Idempotency-Key sends the same order id
    again (the writer stores it once); a retry without a key is a new order.
    """


@dataclass(frozen=True)
class FailedEntry:
    entry_id: str
    code: str
    sender_fault: bool


class QueuePublisher(Protocol):
    def send(self, body: str, *, group: str | None = None) -> None:
        """Enqueue one message (in fair-queue `group`, the producer), or raise QueueUnavailableError."""
        ...

    def send_batch(self, entries: Mapping[str, str], *, group: str | None = None) -> Sequence[FailedEntry]:
        """Enqueue up to SQS_BATCH_LIMIT messages (id -> body) in one call, all in `group`.

        Returns the entries SQS did not take (all others are enqueued); raises QueueUnavailableError
        when the call as a whole failed (then none of them was enqueued).
        """
        ...


class SqsPublisher:
    """Sends to the orders queue; every call (retries included) ends before the request's deadline."""

    def __init__(self, queue_url: str, deadline: Deadline, *, fair_groups: bool = True) -> None:
        self._queue_url = queue_url
        self._deadline = deadline
        self._fair_groups = fair_groups

    def _group(self, group: str | None) -> Any:
        # MessageGroupId on a standard queue makes it a fair queue keyed by that tenant.
        return {"MessageGroupId": fair_group_id(group)} if group and self._fair_groups else {}

    def _call[T](self, call: Callable[[SQSClient], T]) -> T:
        try:
            # Looked up at call time: tests put a client of their own in place of sqs_client_for.
            return call_within(self._deadline, call, client_for=lambda deadline: sqs_client_for(deadline))
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error

    def send(self, body: str, *, group: str | None = None) -> None:
        attributes = _correlation()
        extra: dict[str, Any] = {"MessageAttributes": attributes} if attributes else {}
        self._call(
            lambda sqs: sqs.send_message(
                QueueUrl=self._queue_url, MessageBody=body, **self._group(group), **extra
            )
        )

    def send_batch(self, entries: Mapping[str, str], *, group: str | None = None) -> Sequence[FailedEntry]:
        if len(entries) > SQS_BATCH_LIMIT:
            raise ValueError(f"at most {SQS_BATCH_LIMIT} entries per SendMessageBatch call")
        attributes = _correlation()
        batch: list[SendMessageBatchRequestEntryTypeDef] = []
        for entry_id, body in entries.items():
            entry: SendMessageBatchRequestEntryTypeDef = {
                "Id": entry_id,
                "MessageBody": body,
                **self._group(group),
            }
            if attributes:
                entry["MessageAttributes"] = attributes
            batch.append(entry)
        response = self._call(lambda sqs: sqs.send_message_batch(QueueUrl=self._queue_url, Entries=batch))
        return [
            FailedEntry(entry_id=failed["Id"], code=failed["Code"], sender_fault=failed["SenderFault"])
            for failed in response.get("Failed", [])
        ]


def fair_group_id(producer: str) -> str:
    """The MessageGroupId of `producer`'s messages: its id when SQS takes it, else a digest of it."""
    if _VERBATIM_GROUP.fullmatch(producer):
        return producer
    return HASHED_GROUP_PREFIX + hashlib.sha256(producer.encode("utf-8")).hexdigest()


def _correlation() -> dict[str, MessageAttributeValueTypeDef]:
    """The request id as a message attribute, so the writer logs each order with the request that posted
    it (the trace header needs no code: boto3 sends it and SQS keeps it as `AWSTraceHeader`)."""
    current = request_id()
    if current is None:
        return {}
    return {REQUEST_ID_ATTRIBUTE: {"DataType": "String", "StringValue": current}}


def _unavailable(error: Exception) -> QueueUnavailableError:
    # The queue URL and the error class are enough to diagnose; message bodies are never logged.
    logger.warning("orders queue unavailable", extra={"error": type(error).__name__, "detail": str(error)})
    return QueueUnavailableError("the order queue is unavailable; nothing was accepted, retry later")


def sqs_client_for(deadline: Deadline) -> SQSClient:
    """The SQS client for one attempt before `deadline` (at most SQS_CALL_SECONDS per attempt)."""
    client: SQSClient = client_within("sqs", deadline, cap_seconds=SQS_CALL_SECONDS)
    return client


def publisher_within(deadline: Deadline) -> QueuePublisher:
    """The publisher for one request: its SQS calls and retries end before `deadline`."""
    settings = get_settings()
    return SqsPublisher(settings.orders_queue_url, deadline, fair_groups=settings.fair_queue_by_producer)
