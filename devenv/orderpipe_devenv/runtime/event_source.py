"""An SQS event source mapping emulator in front of the real writer.

Like Lambda's poller: up to `max_concurrency` batches in flight; each gathers messages until it
has `batch_size` or `batching_window_seconds` passed since its first message; the writer gets a
real SQS event; only the records not named in `batchItemFailures` are deleted. The others come back
after the visibility timeout, and the queue's redrive policy moves them to the DLQ after
maxReceiveCount receives. A handler that raises counts as every record failed.

As on Lambda, the pollers keep gathering while earlier batches are being invoked (at most
`max_concurrency` writer invocations at once): a poller that also waited for its invocation and its
deletes left the queue unread meanwhile, and the orders arriving then waited that long beyond the
window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from orderpipe_devenv.lambda_events import sqs_event_from_messages

log = logging.getLogger("orderpipe.event_source")

SQS_MAX_MESSAGES_PER_RECEIVE = 10
SQS_MAX_ENTRIES_PER_DELETE = 10
# Within a batching window, the pause after a receive that did not fill up: at most ~4 receives per
# second per poller while the queue trickles (each is a full API call for the SQS server), and no
# added latency (the batch goes out at the window's end, after one last receive).
WINDOW_RECEIVE_INTERVAL_SECONDS = 0.25


@dataclass
class EventSourceStats:
    batches: int = 0
    records: int = 0  # deliveries: a message redelivered after its visibility timeout counts again
    first_deliveries: int = 0  # distinct messages: those delivered with ApproximateReceiveCount 1
    deleted: int = 0
    failed: int = 0
    handler_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, records: int, first_deliveries: int, failed: int, handler_error: bool) -> None:
        with self._lock:
            self.batches += 1
            self.records += records
            self.first_deliveries += first_deliveries
            self.failed += failed
            self.deleted += records - failed
            self.handler_errors += int(handler_error)


class SqsEventSource:
    def __init__(
        self,
        *,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        invoke: Callable[[dict[str, Any]], Any],
        batch_size: int,
        batching_window_seconds: float,
        max_concurrency: int,
        poll_wait_seconds: int = 1,
    ) -> None:
        self._sqs = sqs_client
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._invoke = invoke
        self._batch_size = batch_size
        self._window = batching_window_seconds
        self._max_concurrency = max_concurrency
        # Short long-polls so that stop() is prompt; an empty receive costs one cheap local call.
        self._poll_wait_seconds = poll_wait_seconds
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # The mapping's maximum concurrency: invocations in flight; a poller with a gathered batch
        # waits for a free one (holding its messages in flight, as Lambda's poller does).
        self._invocation_slots = threading.BoundedSemaphore(max_concurrency)
        self._invoker = ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="event-source-invoke"
        )
        self.stats = EventSourceStats()
        # Drills: called with the messages of each batch deleted after the writer reported them stored.
        self.on_deleted: Callable[[list[dict[str, Any]]], None] | None = None

    def start(self) -> None:
        for number in range(self._max_concurrency):
            thread = threading.Thread(target=self._poll, name=f"event-source-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._invoker.shutdown(wait=True)  # the batches already gathered are still delivered

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(SQS_MAX_MESSAGES_PER_RECEIVE, count),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _gather_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline: float | None = None
        while not self._stopping.is_set() and len(messages) < self._batch_size:
            wanted = min(SQS_MAX_MESSAGES_PER_RECEIVE, self._batch_size - len(messages))
            if deadline is None:
                received = self._receive(wanted, self._poll_wait_seconds)
                if received:
                    deadline = time.monotonic() + self._window
                messages.extend(received)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # The window is over: take what is there now, up to the batch size, and deliver.
                while len(messages) < self._batch_size:
                    wanted = min(SQS_MAX_MESSAGES_PER_RECEIVE, self._batch_size - len(messages))
                    received = self._receive(wanted, 0)
                    messages.extend(received)
                    if len(received) < wanted:
                        break
                break
            # Keep receiving through the whole window, as Lambda's pollers do: a poller that slept out
            # its window after one empty receive left every order that arrived meanwhile in the queue
            # for the next window (up to twice the window, POST -> readable). An SQS long poll takes
            # whole seconds and returns on the first message, so within the window it is a receive of
            # what is there, and a short pause after a partial one rather than a call after call.
            received = self._receive(wanted, 0)
            messages.extend(received)
            if len(received) < wanted:
                self._stopping.wait(min(remaining, WINDOW_RECEIVE_INTERVAL_SECONDS))
        return messages

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                messages = self._gather_batch()
                if messages:
                    self._invocation_slots.acquire()
                    try:
                        self._invoker.submit(self._deliver_in_slot, messages)
                    except BaseException:
                        self._invocation_slots.release()
                        raise
            except Exception:
                log.exception("event source poll failed; retrying in 1 s")
                self._stopping.wait(1)

    def _deliver_in_slot(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._deliver(messages)
        except Exception:
            # Not deleted: the messages come back after the visibility timeout.
            log.exception("delivering a batch of %d failed", len(messages))
        finally:
            self._invocation_slots.release()

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = sqs_event_from_messages(messages, queue_arn=self._queue_arn)
        started = time.perf_counter()
        handler_error = False
        try:
            response = self._invoke(event) or {}
            failed_ids = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
        except Exception:
            log.exception("writer invocation failed; the whole batch returns after the visibility timeout")
            failed_ids = {message["MessageId"] for message in messages}
            handler_error = True
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), SQS_MAX_ENTRIES_PER_DELETE):
            chunk = done[start : start + SQS_MAX_ENTRIES_PER_DELETE]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        if done and self.on_deleted is not None:
            self.on_deleted(done)
        first_deliveries = sum(
            m.get("Attributes", {}).get("ApproximateReceiveCount") == "1" for m in messages
        )
        self.stats.add(
            records=len(messages),
            first_deliveries=first_deliveries,
            failed=len(failed_ids),
            handler_error=handler_error,
        )
        log.info(
            "batch of %d: %d written, %d failed (retried after the visibility timeout) in %.0f ms",
            len(messages),
            len(done),
            len(failed_ids),
            (time.perf_counter() - started) * 1000,
        )
