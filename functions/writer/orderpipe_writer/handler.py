"""Writer Lambda: SQS batch in, partial batch response out.

Every record is parsed against the versioned envelope (a malformed one fails alone), the valid ones
are inserted concurrently, and `batchItemFailures` names exactly the records that were not stored.
Stored orders are logged with the request that posted them and the trace they belong to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orderpipe_common.deadlines import Deadline, batch_reserve_seconds
from orderpipe_common.envelope import parse_envelope
from orderpipe_common.model import Order
from orderpipe_common.observability import REQUEST_ID_ATTRIBUTE, MetricUnit, logger, metrics, trace_root
from orderpipe_common.per_process import init_done, per_process
from orderpipe_common.settings import load
from orderpipe_writer.logic import write_orders
from orderpipe_writer.processor import ParseThenBulkProcessor, SqsRecord, process_partial_response
from orderpipe_writer.settings import WriterSettings
from orderpipe_writer.store import CassandraOrderStore, Outcomes

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Time a batch may take when no Lambda context says otherwise (tools calling the handler directly).
DEFAULT_SECONDS = 30.0


@per_process
def get_store() -> CassandraOrderStore:
    return CassandraOrderStore(load(WriterSettings))


def parse_record(record: SqsRecord) -> Order:
    return parse_envelope(record["body"])


def write_parsed(orders: Sequence[Order], context: LambdaContext | None) -> Outcomes:
    # What is not stored by then is reported in batchItemFailures before the function times out.
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else DEFAULT_SECONDS
    deadline = Deadline.after(remaining - batch_reserve_seconds(remaining))
    return write_orders(get_store(), orders, deadline)


def log_written(written: Sequence[tuple[SqsRecord, Order]]) -> None:
    """One line per batch naming every stored order under the ingest request that posted it and that
    request's trace (a line per order cost as much CPU as parsing it; Logs Insights finds an order id
    or a request id in the line all the same)."""
    by_request: dict[str, dict[str, Any]] = {}
    for record, order in written:
        request = (record.get("messageAttributes") or {}).get(REQUEST_ID_ATTRIBUTE) or {}
        request_id = request.get("stringValue") or "unknown"
        entry = by_request.get(request_id)
        if entry is None:
            trace = trace_root((record.get("attributes") or {}).get("AWSTraceHeader"))
            entry = by_request[request_id] = {"posted_trace_id": trace, "order_ids": []}
        entry["order_ids"].append(str(order.order_id))
    if by_request:
        logger.info("orders written", extra={"requests": by_request})


processor = ParseThenBulkProcessor(bulk_handler=write_parsed, on_written=log_written)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    if not records:  # Lambda never sends an empty batch
        return {"batchItemFailures": []}
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=len(records))
    response = process_partial_response(
        event=event, record_handler=parse_record, processor=processor, context=context
    )
    failures = len(response["batchItemFailures"])
    logger.info(
        "batch done", extra={"records": len(records), "written": len(records) - failures, "failed": failures}
    )
    return dict(response)


init_done()
