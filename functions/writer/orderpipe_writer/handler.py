"""Writer Lambda: SQS batch in, partial batch response out.

Every record is parsed against the versioned envelope (a malformed one fails alone), the valid ones
are inserted concurrently, and `batchItemFailures` names exactly the records that were not stored.
Each stored order is logged with the request that posted it and the trace it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orderpipe_common.envelope import parse_envelope
from orderpipe_common.model import Order
from orderpipe_common.observability import REQUEST_ID_ATTRIBUTE, MetricUnit, logger, metrics, trace_root
from orderpipe_common.per_process import per_process
from orderpipe_common.settings import load
from orderpipe_writer.logic import write_orders
from orderpipe_writer.processor import ParseThenBulkProcessor, SqsRecord, process_partial_response
from orderpipe_writer.settings import WriterSettings
from orderpipe_writer.store import CassandraOrderStore, Outcomes

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@per_process
def get_store() -> CassandraOrderStore:
    return CassandraOrderStore(load(WriterSettings))


def parse_record(record: SqsRecord) -> Order:
    return parse_envelope(record["body"])


def write_parsed(orders: Sequence[Order]) -> Outcomes:
    return write_orders(get_store(), orders)


def log_written(record: SqsRecord, order: Order) -> None:
    """One line per stored order: its id, the ingest request that posted it and that request's trace."""
    request = (record.get("messageAttributes") or {}).get(REQUEST_ID_ATTRIBUTE) or {}
    logger.info(
        "order written",
        extra={
            "order_id": str(order.order_id),
            "request_id": request.get("stringValue"),
            "posted_trace_id": trace_root((record.get("attributes") or {}).get("AWSTraceHeader")),
        },
    )


processor = ParseThenBulkProcessor(bulk_handler=write_parsed, on_success=log_written)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    if not records:  # Lambda never sends an empty batch
        return {"batchItemFailures": []}
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=len(records))
    response = process_partial_response(event=event, record_handler=parse_record, processor=processor)
    failures = len(response["batchItemFailures"])
    logger.info(
        "batch done", extra={"records": len(records), "written": len(records) - failures, "failed": failures}
    )
    return dict(response)
