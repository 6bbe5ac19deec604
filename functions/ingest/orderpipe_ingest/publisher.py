"""Putting messages on the orders queue.

The logic talks to `QueuePublisher` (a Protocol), so it is unit-testable without a network; the
deployed function uses `SqsPublisher` over a boto3 client created once per process. The endpoint
comes from boto3's standard configuration (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`), so moto
works with no code difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from orderpipe_common.errors import DomainError
from orderpipe_common.observability import REQUEST_ID_ATTRIBUTE, logger, request_id
from orderpipe_common.per_process import per_process
from orderpipe_ingest.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

# SendMessageBatch takes at most this many entries per call.
SQS_BATCH_LIMIT = 10


class QueueUnavailableError(DomainError):
    """The queue could not be reached or refused the whole call: nothing of that call was enqueued."""


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
    def __init__(self, client: SQSClient, queue_url: str, *, fair_groups: bool = True) -> None:
        self._client = client
        self._queue_url = queue_url
        self._fair_groups = fair_groups

    def _group(self, group: str | None) -> Any:
        # MessageGroupId on a standard queue makes it a fair queue keyed by that tenant.
        return {"MessageGroupId": group} if group and self._fair_groups else {}

    def send(self, body: str, *, group: str | None = None) -> None:
        try:
            attributes = _correlation()
            extra: dict[str, Any] = {"MessageAttributes": attributes} if attributes else {}
            self._client.send_message(
                QueueUrl=self._queue_url, MessageBody=body, **self._group(group), **extra
            )
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error

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
        try:
            response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=batch)
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(error) from error
        return [
            FailedEntry(entry_id=failed["Id"], code=failed["Code"], sender_fault=failed["SenderFault"])
            for failed in response.get("Failed", [])
        ]


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


@per_process
def get_sqs_client() -> SQSClient:
    """The process-wide SQS client (created on first use, reused by every invocation)."""
    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"mode": "standard", "max_attempts": get_settings().sqs_max_attempts},
    )
    return boto3.client("sqs", config=config)


@per_process
def get_publisher() -> QueuePublisher:
    settings = get_settings()
    return SqsPublisher(
        get_sqs_client(), settings.orders_queue_url, fair_groups=settings.fair_queue_by_producer
    )
