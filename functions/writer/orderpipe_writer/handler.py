"""Writer Lambda: SQS batch in, partial batch response out.

Every record is parsed against the versioned envelope (a malformed one fails alone), the valid ones
are inserted concurrently, and `batchItemFailures` names exactly the records that were not stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from orderpipe_common.deadlines import Deadline, batch_reserve_seconds
from orderpipe_common.envelope import parse_envelope
from orderpipe_common.model import Order
from orderpipe_common.observability import MetricUnit, logger, metrics, tracer
from orderpipe_common.per_process import per_process
from orderpipe_common.settings import load
from orderpipe_writer.logic import write_orders
from orderpipe_writer.processor import ParseThenBulkProcessor
from orderpipe_writer.settings import WriterSettings
from orderpipe_writer.store import CassandraOrderStore, Outcomes

# Time a batch may take when no Lambda context says otherwise (tools calling the handler directly).
DEFAULT_SECONDS = 30.0


@per_process
def get_store() -> CassandraOrderStore:
    return CassandraOrderStore(load(WriterSettings))


def parse_record(record: SQSRecord) -> Order:
    return parse_envelope(record.body)


def write_parsed(orders: Sequence[Order], context: LambdaContext | None) -> Outcomes:
    # What is not stored by then is reported in batchItemFailures before the function times out.
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else DEFAULT_SECONDS
    deadline = Deadline.after(remaining - batch_reserve_seconds(remaining))
    return write_orders(get_store(), orders, deadline)


processor = ParseThenBulkProcessor(bulk_handler=write_parsed)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    if not records:  # Lambda never sends an empty batch; Powertools would reject one
        return {"batchItemFailures": []}
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=len(records))
    response = process_partial_response(
        event=event, record_handler=parse_record, processor=processor, context=context
    )
    failures = len(response.get("batchItemFailures", []))
    logger.info(
        "batch done", extra={"records": len(records), "written": len(records) - failures, "failed": failures}
    )
    return dict(response)
