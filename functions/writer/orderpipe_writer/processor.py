"""SQS partial batch responses: parse the records one by one, write them all at once.

With `ReportBatchItemFailures` on, Lambda's SQS event source retries exactly the records named in
`batchItemFailures`. Each record is parsed on its own (a malformed one fails alone), then one bulk
handler writes every parsed record concurrently and reports an outcome per record, in order. The
bulk handler gets the invocation's context, to fit its work in the time left.

Not Powertools' batch utility: the writer used only its bookkeeping, and importing it (asyncio and
every event data class) was a third of the writer's cold init (docs/benchmarks.md, cold_init).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orderpipe_common.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# An SQS record as Lambda delivers it (messageId, body, attributes, messageAttributes, ...).
SqsRecord = Mapping[str, Any]
BulkHandler = Callable[[Sequence[Any], "LambdaContext | None"], Sequence[BaseException | None]]
RecordHandler = Callable[[SqsRecord], Any]
WrittenHandler = Callable[[Sequence[tuple[SqsRecord, Any]]], None]


class ParseThenBulkProcessor:
    def __init__(self, *, bulk_handler: BulkHandler, on_written: WrittenHandler | None = None) -> None:
        self._bulk_handler = bulk_handler
        self._on_written = on_written  # called once per batch with every (record, value) written

    def process(
        self,
        records: Sequence[SqsRecord],
        record_handler: RecordHandler,
        context: LambdaContext | None = None,
    ) -> list[str]:
        """The message ids of the records that were not processed (to be retried)."""
        failed: list[str] = []
        parsed_records: list[SqsRecord] = []
        parsed_values: list[Any] = []
        for record in records:
            try:
                parsed_values.append(record_handler(record))
                parsed_records.append(record)
            except Exception as error:
                # The body is never logged (it is the customer's order); the id finds it in the DLQ.
                logger.warning(
                    "record not readable",
                    extra={"message_id": record["messageId"], "error": f"{type(error).__name__}: {error}"},
                )
                failed.append(record["messageId"])
        outcomes = self._bulk_handler(parsed_values, context) if parsed_values else []
        written = []
        for record, value, outcome in zip(parsed_records, parsed_values, outcomes, strict=True):
            if outcome is None:
                written.append((record, value))
            else:
                failed.append(record["messageId"])
        if self._on_written is not None and written:
            self._on_written(written)
        order = {record["messageId"]: position for position, record in enumerate(records)}
        return sorted(failed, key=order.__getitem__)


def process_partial_response(
    *,
    event: Mapping[str, Any],
    record_handler: RecordHandler,
    processor: ParseThenBulkProcessor,
    context: LambdaContext | None = None,
) -> dict[str, list[dict[str, str]]]:
    """`{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}` for an SQS event."""
    failed = processor.process(event.get("Records", []), record_handler, context)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
