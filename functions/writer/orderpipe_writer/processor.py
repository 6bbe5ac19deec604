"""A Powertools batch processor that parses records one by one and writes them all at once.

Powertools' BatchProcessor calls the record handler once per record, sequentially; writing 100
orders that way is 100 round trips in a row. This subclass keeps Powertools' semantics (the record
handler, success/failure bookkeeping, `batchItemFailures` via `process_partial_response`) but splits
the work: the record handler only parses (a malformed record fails alone), then one bulk handler
writes every parsed record concurrently and reports an outcome per record. The bulk handler gets
the invocation's context, to fit its work in the time left.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.typing import LambdaContext

BulkHandler = Callable[[Sequence[Any], LambdaContext | None], Sequence[BaseException | None]]


class ParseThenBulkProcessor(BatchProcessor):
    def __init__(self, *, bulk_handler: BulkHandler, event_type: EventType = EventType.SQS) -> None:
        # A batch where every record failed is reported through batchItemFailures, like any other:
        # the event source then retries exactly those records.
        super().__init__(event_type=event_type, raise_on_entire_batch_failure=False)
        self._bulk_handler = bulk_handler

    def process(self) -> list[tuple]:
        responses: list[tuple | None] = [None] * len(self.records)
        parsed_positions: list[int] = []
        parsed_values: list[Any] = []
        records: list[Any] = [self._to_batch_type(record=r, event_type=self.event_type) for r in self.records]
        for position, data in enumerate(records):
            try:
                parsed_values.append(self.handler(record=data))
                parsed_positions.append(position)
            except Exception:
                responses[position] = self.failure_handler(record=data, exception=sys.exc_info())

        context = getattr(self, "lambda_context", None)  # set by Powertools when a context is given
        outcomes = self._bulk_handler(parsed_values, context) if parsed_values else []
        for position, value, outcome in zip(parsed_positions, parsed_values, outcomes, strict=True):
            data = records[position]
            if outcome is None:
                responses[position] = self.success_handler(record=data, result=value)
            else:
                responses[position] = self.failure_handler(
                    record=data, exception=(type(outcome), outcome, outcome.__traceback__)
                )
        return [response for response in responses if response is not None]
