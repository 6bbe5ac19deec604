"""Build the SQS event a Lambda event source mapping delivers, from received (or made-up) messages."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any


def sqs_record(
    body: str,
    *,
    queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:orders",
    message_id: str | None = None,
    receipt_handle: str | None = None,
    attributes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    now_ms = str(int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt_handle or f"local-{uuid.uuid4()}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now_ms,
            "SenderId": "AIDAORDERPIPELOCAL",
            "ApproximateFirstReceiveTimestamp": now_ms,
            **(attributes or {}),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def sqs_event_from_bodies(bodies: Iterable[str], **kwargs: Any) -> dict[str, Any]:
    return {"Records": [sqs_record(body, **kwargs) for body in bodies]}


def sqs_event_from_messages(messages: Iterable[Mapping[str, Any]], *, queue_arn: str) -> dict[str, Any]:
    """From boto3 `receive_message` results (with AttributeNames=['All'])."""
    return {
        "Records": [
            sqs_record(
                message["Body"],
                queue_arn=queue_arn,
                message_id=message["MessageId"],
                receipt_handle=message["ReceiptHandle"],
                attributes=message.get("Attributes"),
            )
            for message in messages
        ]
    }
