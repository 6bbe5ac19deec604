"""Bulk import: a file of orders through `POST /orders/batch`, resumable, each line stored once.

Input: JSON Lines (one order per line; blank lines are skipped) or CSV (one row per line item, see
`read_csv`). A line (a CSV order) is identified by its line number.

The outcome file (JSON Lines, append-only) is both the result and the journal:

    {"header": {"format": "orderpipe-import-outcomes", "version": 1, "source": ..., "source_sha256": ...}}
    {"sending": {"key": "<Idempotency-Key>", "lines": [1, 2, ...], "body_sha256": "..."}}
    {"line": 1, "status": "accepted", "order_id": "...", "key": "..."}
    {"line": 2, "status": "rejected", "errors": [{"field": "items.0.quantity", ...}], "message": ...}
    {"line": 3, "status": "failed", "message": "...", "key": "..."}

A line's last `status` record is its outcome. `accepted` and `rejected` are final; `failed` (not
accepted within the retry budget) is not: running the import again sends it again.

Why every line is stored exactly once, however often the import is interrupted (Ctrl-C, SIGKILL,
a crash of the machine) and started again with the same outcome file:

1. Before a batch request is first sent, a `sending` record naming its key, its lines and its body's
   hash is appended and fsync'd. A line that has no such record was never sent.
2. Outcomes are appended (and fsync'd) as soon as they are known, before any re-send of the same
   batch's unqueued orders is journaled.
3. On a new run, lines with a final outcome are skipped. Each other line that was journaled is sent
   again *in the last batch it was journaled in*: the same lines, the same body (checked by hash) and
   the same key, so the server answers with, or derives, the same order ids (see
   `orderpipe_client.keys`). Lines never journaled are batched afresh.
4. The source file must not change between runs (its SHA-256 is in the header; a different file is
   refused) and the outcome file is only ever appended to: each append is one write followed by
   fsync, so an interruption can only leave a torn last line, which the next run drops.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from orderpipe_client import keys
from orderpipe_client.client import (
    MAX_ORDERS_PER_BATCH,
    OrderpipeClient,
    PreparedOrder,
    plan_batches,
)
from orderpipe_client.errors import OperationCancelledError, OrderpipeError
from orderpipe_client.models import FieldError, OrderOutcome
from orderpipe_client.retry import sleep_unless_cancelled

log = logging.getLogger("orderpipe_client")

OUTCOME_FORMAT = "orderpipe-import-outcomes"
OUTCOME_VERSION = 1
SourceFormat = Literal["jsonl", "csv"]


class OutcomeFileError(OrderpipeError):
    """The outcome file cannot be used for this import (another source, another format, damaged)."""


class SourceFormatError(OrderpipeError):
    """The source file is not in the expected format (e.g. a CSV without the required columns)."""


# -- reading the source --------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRecord:
    """One order of the source file: its JSON data, or why it is not an order (never sent)."""

    line: int
    payload: Any = None
    errors: tuple[FieldError, ...] = ()
    ref: str | None = None  # the CSV `order_ref`


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_jsonl(path: Path) -> Iterator[SourceRecord]:
    """One record per non-blank line; numbers with a fraction are read as exact decimals."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte order mark
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield SourceRecord(
                    number, errors=(_local_error(f"the line is not UTF-8: {error}", "not_utf8"),)
                )
                continue
            try:
                payload = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
            except (ValueError, RecursionError) as error:
                yield SourceRecord(
                    number, errors=(_local_error(f"the line is not JSON: {error}", "json_invalid"),)
                )
                continue
            yield SourceRecord(number, payload=payload)


# The CSV mapping: one row per line item; rows with the same `order_ref` make one order and must be
# contiguous. Order-level columns may be repeated on every row of an order (then they must agree)
# or given on its first row only.
CSV_ORDER_COLUMNS = ("customer_id", "currency", "client_reference")
CSV_ITEM_COLUMNS = ("sku", "quantity", "unit_price")
CSV_ADDRESS_COLUMNS = {
    "ship_name": "name",
    "ship_line1": "line1",
    "ship_line2": "line2",
    "ship_city": "city",
    "ship_region": "region",
    "ship_postal_code": "postal_code",
    "ship_country": "country",
}
CSV_REQUIRED_COLUMNS = ("order_ref", "customer_id", "currency", *CSV_ITEM_COLUMNS)
CSV_COLUMNS = frozenset({"order_ref", *CSV_ORDER_COLUMNS, *CSV_ITEM_COLUMNS, *CSV_ADDRESS_COLUMNS})


def read_csv(path: Path) -> Iterator[SourceRecord]:
    """Orders from a CSV file with a header row (UTF-8, comma-separated).

    Columns: `order_ref` (groups rows into one order; also the order's `client_reference` unless a
    `client_reference` column gives one), `customer_id`, `currency`, `sku`, `quantity` (an integer),
    `unit_price` (a decimal, sent as a string), and optionally `client_reference` and the shipping
    address `ship_name`, `ship_line1`, `ship_line2`, `ship_city`, `ship_region`,
    `ship_postal_code`, `ship_country` (the address is sent when any of them is set). Empty cells are
    absent values. An order's line number is the line its first row starts on.
    """
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = set(reader.fieldnames or ())
        missing = [name for name in CSV_REQUIRED_COLUMNS if name not in columns]
        unknown = sorted(columns - CSV_COLUMNS)
        if missing or unknown:
            raise SourceFormatError(
                f"{path}: "
                + "; ".join(
                    part
                    for part in (
                        f"missing columns {', '.join(missing)}" if missing else "",
                        f"unknown columns {', '.join(unknown)}" if unknown else "",
                    )
                    if part
                )
                + f" (expected {', '.join(CSV_REQUIRED_COLUMNS)} and optionally client_reference, "
                + ", ".join(CSV_ADDRESS_COLUMNS)
                + ")"
            )
        seen: dict[str, int] = {}
        group: list[dict[str, str]] = []
        group_line = 0
        row_start = reader.line_num + 1
        for row in reader:
            ref = (row.get("order_ref") or "").strip()
            if group and ref != (group[0].get("order_ref") or "").strip():
                yield _csv_order(group, group_line, seen)
                group = []
            if not group:
                group_line = row_start
            group.append(row)
            row_start = reader.line_num + 1
        if group:
            yield _csv_order(group, group_line, seen)


def _csv_order(rows: list[dict[str, str]], line: int, seen: dict[str, int]) -> SourceRecord:
    ref = (rows[0].get("order_ref") or "").strip()
    if not ref:
        return SourceRecord(line, errors=(_local_error("order_ref is empty", "missing", "order_ref"),))
    if ref in seen:
        message = f"rows of order_ref {ref!r} are not contiguous (its first rows start on line {seen[ref]})"
        return SourceRecord(line, errors=(_local_error(message, "not_contiguous", "order_ref"),), ref=ref)
    seen[ref] = line
    errors: list[FieldError] = []
    order: dict[str, Any] = {}
    for column in CSV_ORDER_COLUMNS:
        values = {value for row in rows if (value := (row.get(column) or "").strip())}
        if len(values) > 1:
            errors.append(
                _local_error(f"rows of order_ref {ref!r} disagree on {column}", "inconsistent", column)
            )
        elif values:
            order[column] = values.pop()
    order.setdefault("client_reference", ref)
    address: dict[str, str] = {}
    for column, name in CSV_ADDRESS_COLUMNS.items():
        values = {value for row in rows if (value := (row.get(column) or "").strip())}
        if len(values) > 1:
            errors.append(
                _local_error(f"rows of order_ref {ref!r} disagree on {column}", "inconsistent", column)
            )
        elif values:
            address[name] = values.pop()
    if address:
        order["shipping_address"] = address
    items = []
    for row in rows:
        item: dict[str, Any] = {}
        for column in CSV_ITEM_COLUMNS:
            value = (row.get(column) or "").strip()
            if value:
                item[column] = value
        quantity = item.get("quantity")
        if isinstance(quantity, str) and quantity.lstrip("-").isdigit():
            item["quantity"] = int(quantity)  # the API takes an integer; anything else it refuses by name
        items.append(item)
    order["items"] = items
    if errors:
        return SourceRecord(line, errors=tuple(errors), ref=ref)
    return SourceRecord(line, payload=order, ref=ref)


def _local_error(message: str, kind: str, name: str = "body") -> FieldError:
    return FieldError(field=name, message=message, type=kind)


def read_source(path: Path, source_format: SourceFormat) -> Iterator[SourceRecord]:
    return read_csv(path) if source_format == "csv" else read_jsonl(path)


def detect_format(path: Path) -> SourceFormat:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def default_outcome_path(source: Path) -> Path:
    return source.with_name(source.name + ".outcome.jsonl")


# -- the outcome file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SentBatch:
    """A journaled batch request: re-sent as it was (key, lines, body) until all its lines settle."""

    key: str
    lines: tuple[int, ...]
    body_sha256: str


@dataclass
class OutcomeState:
    """What an outcome file says: final outcomes, failures, and the last batch each line was sent in."""

    header: dict[str, Any] | None = None
    final: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, dict[str, Any]] = field(default_factory=dict)
    last_sent: dict[int, SentBatch] = field(default_factory=dict)

    def apply(self, record: dict[str, Any]) -> None:
        if "header" in record:
            self.header = record["header"]
        elif "sending" in record:
            sent = record["sending"]
            batch = SentBatch(key=sent["key"], lines=tuple(sent["lines"]), body_sha256=sent["body_sha256"])
            for line in batch.lines:
                self.last_sent[line] = batch
        elif "line" in record:
            line = int(record["line"])
            if record.get("status") in ("accepted", "rejected"):
                self.final[line] = record
                self.failed.pop(line, None)
            elif line not in self.final:
                self.failed[line] = record

    def unfinished_batches(self) -> list[SentBatch]:
        """The batches to send again: each is the last batch of some line without a final outcome."""
        batches = {batch.key: batch for line, batch in self.last_sent.items() if line not in self.final}
        return sorted(batches.values(), key=lambda batch: batch.lines)

    def count(self, status: str) -> int:
        return sum(1 for record in self.final.values() if record.get("status") == status)


def read_outcomes(path: Path) -> OutcomeState:
    """The outcome file's state (a torn last line is ignored)."""
    state = OutcomeState()
    for record in _parse_outcome_file(path.read_bytes(), path)[0]:
        state.apply(record)
    return state


def _parse_outcome_file(data: bytes, path: Path) -> tuple[list[dict[str, Any]], int]:
    """(records, length of the intact prefix): only the last line may be torn or unreadable."""
    records: list[dict[str, Any]] = []
    intact = 0
    lines = data.split(b"\n")
    for position, raw in enumerate(lines):
        is_last = position == len(lines) - 1
        if is_last and not raw:
            break
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError as error:
            # A line the last interrupted append left behind (without its newline, or cut short).
            if is_last or (position == len(lines) - 2 and not lines[-1]):
                break
            raise OutcomeFileError(
                f"{path}: line {position + 1} is damaged ({error}); it is not the last line"
            ) from None
        if is_last:
            break  # complete JSON but no newline: the append was cut; send its lines again
        records.append(record)
        intact += len(raw) + 1
    return records, intact


class OutcomeLog:
    """The append-only outcome file: each append is one write() and one fsync()."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor = descriptor
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, header: dict[str, Any]) -> tuple[OutcomeLog, OutcomeState]:
        """Open (or create) the outcome file of the import `header` describes; refuse another's."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            _lock_exclusively(descriptor, path)
            existing = path.read_bytes()
            records, intact = _parse_outcome_file(existing, path)
            state = OutcomeState()
            for record in records:
                state.apply(record)
            if records and state.header is None:
                raise OutcomeFileError(f"{path} is not an import outcome file (no header)")
            if state.header is not None:
                _check_header(path, state.header, header)
        except BaseException:
            os.close(descriptor)
            raise
        log = cls(path, descriptor)
        if intact < len(existing):
            os.ftruncate(descriptor, intact)  # drop the torn last line before appending after it
            os.fsync(descriptor)
        if state.header is None:
            log.append([{"header": header}])
            state.header = header
            _fsync_directory(path.parent)  # the new file's name survives a crash too
        return log, state

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(record, separators=(",", ":"), default=str) + "\n" for record in records)
        with self._lock:
            view = memoryview(data.encode())
            while view:
                written = os.write(self._descriptor, view)
                view = view[written:]
            os.fsync(self._descriptor)

    def close(self) -> None:
        os.close(self._descriptor)


def _check_header(path: Path, found: dict[str, Any], expected: dict[str, Any]) -> None:
    if found.get("format") != OUTCOME_FORMAT or found.get("version") != OUTCOME_VERSION:
        raise OutcomeFileError(f"{path} is not a version {OUTCOME_VERSION} import outcome file")
    for name in ("source_sha256", "source_format"):
        if found.get(name) != expected.get(name):
            raise OutcomeFileError(
                f"{path} records an import of another file (or another version of it: {name} differs). "
                "Resuming would skip or re-send the wrong lines; give a new outcome path to import this file."
            )


def _lock_exclusively(descriptor: int, path: Path) -> None:
    """One import per outcome file at a time: two would send the same lines in different batches."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no advisory locks
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OutcomeFileError(f"{path} is in use by another import (wait for it, or stop it)") from None


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sha256_of(path: Path) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


# -- pacing --------------------------------------------------------------------------------------


class RateLimiter:
    """Spaces requests so that orders go out at `per_second` on average (a reservation per request)."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0:
            raise ValueError("the rate must be positive")
        self._per_second = per_second
        self._clock = clock
        self._next = clock()
        self._lock = threading.Lock()

    def reserve(self, count: int) -> float:
        """Seconds to wait before sending `count` orders (the reservation is made)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + count / self._per_second
            return start - now


# -- the import ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportProgress:
    """Where an import stands: `total` orders in the file, `done` of them with an outcome."""

    total: int
    done: int
    accepted: int
    rejected: int
    failed: int
    skipped: int  # had a final outcome before this run started
    elapsed: float


@dataclass(frozen=True)
class ImportResult:
    """Final counts over the whole file (earlier runs included); `failed` = lines not yet accepted."""

    total: int
    accepted: int
    rejected: int
    failed: int
    skipped: int
    outcome_path: Path

    @property
    def ok(self) -> bool:
        """Every line was accepted."""
        return self.rejected == 0 and self.failed == 0


@dataclass
class _Work:
    orders: list[PreparedOrder]
    key: str | None = None  # a journaled batch's key, to re-send it exactly


class _Importer:
    """One run of an import; also the client's batch listener (journal, pacing, counts)."""

    def __init__(
        self,
        *,
        path: Path,
        source_format: SourceFormat,
        client: OrderpipeClient,
        log: OutcomeLog,
        state: OutcomeState,
        rate: float | None,
        concurrency: int,
        batch_size: int,
        progress: Callable[[ImportProgress], None] | None,
        cancel: threading.Event,
    ) -> None:
        self.path = path
        self.source_format = source_format
        self.client = client
        self.log = log
        self.state = state
        self.limiter = RateLimiter(rate) if rate else None
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.progress = progress
        self.cancel = cancel
        self.lock = threading.Lock()
        self.bodies: dict[int, str] = {}
        self.refs: dict[int, str] = {}
        self.failed_now: set[int] = set()
        self.skipped = len(state.final)
        self.total = 0
        self.started = time.monotonic()

    # BatchListener
    def sending(self, key: str, indexes: Sequence[int]) -> None:
        with self.lock:
            body = keys.batch_body([self.bodies[line] for line in indexes])
        if self.limiter is not None:
            sleep_unless_cancelled(self.limiter.reserve(len(indexes)), self.cancel)
        digest = hashlib.sha256(body.encode()).hexdigest()
        record = {"sending": {"key": key, "lines": list(indexes), "body_sha256": digest}}
        self.log.append([record])
        with self.lock:
            self.state.apply(record)

    def settled(self, outcomes: Sequence[OrderOutcome]) -> None:
        with self.lock:
            records = [self._record(outcome) for outcome in outcomes if outcome.index not in self.state.final]
        self.log.append(records)
        with self.lock:
            for record in records:
                self.state.apply(record)
                line = int(record["line"])
                if record["status"] == "failed":
                    self.failed_now.add(line)
                else:
                    self.failed_now.discard(line)
                    self.bodies.pop(line, None)

    def pending(self, index: int) -> bool:
        with self.lock:
            return index not in self.state.final

    def _record(self, outcome: OrderOutcome) -> dict[str, Any]:
        record: dict[str, Any] = {"line": outcome.index, "status": outcome.status}
        if outcome.index in self.refs:
            record["order_ref"] = self.refs[outcome.index]
        if outcome.order_id is not None:
            record["order_id"] = str(outcome.order_id)
        if outcome.errors:
            record["errors"] = [error.model_dump() for error in outcome.errors]
        if outcome.message:
            record["message"] = outcome.message
        if outcome.idempotency_key:
            record["key"] = outcome.idempotency_key
        return record

    # The run
    def run(self) -> ImportResult:
        resend = self.state.unfinished_batches()
        needed = {line for batch in resend for line in batch.lines}
        prepared: dict[int, PreparedOrder] = {}
        for record in read_source(self.path, self.source_format):
            self.total += 1
            if record.line in needed and record.payload is not None:
                prepared[record.line] = self.client.prepare(record.payload, index=record.line)
                if record.ref is not None:
                    self.refs[record.line] = record.ref
        work = self._work(resend, prepared)
        self._execute(work)
        final = self.state.final
        accepted = sum(1 for record in final.values() if record.get("status") == "accepted")
        rejected = len(final) - accepted
        return ImportResult(
            total=self.total,
            accepted=accepted,
            rejected=rejected,
            failed=self.total - len(final),
            skipped=self.skipped,
            outcome_path=self.log.path,
        )

    def _work(self, resend: list[SentBatch], prepared: dict[int, PreparedOrder]) -> Iterator[_Work]:
        for batch in resend:
            # Each line of a batch to re-send is settled or was last sent in it (the journal's order
            # guarantees it); anything else would send an unsettled order in two different requests.
            strays = [
                line
                for line in batch.lines
                if line not in self.state.final and self.state.last_sent.get(line) != batch
            ]
            if strays:
                raise OutcomeFileError(
                    f"{self.log.path}: lines {strays[:5]} are journaled in two unsettled batches; "
                    "the file was not written by this importer"
                )
            orders = [prepared[line] for line in batch.lines if line in prepared]
            body = keys.batch_body([order.body for order in orders])
            if (
                len(orders) != len(batch.lines)
                or hashlib.sha256(body.encode()).hexdigest() != batch.body_sha256
            ):
                raise OutcomeFileError(
                    f"{self.log.path}: the batch sent with key {batch.key} (lines {batch.lines[0]}-"
                    f"{batch.lines[-1]}) cannot be rebuilt identically from {self.path}; re-sending it "
                    "differently could store its orders twice"
                )
            yield _Work(orders=orders, key=batch.key)
        yield from (_Work(orders=batch) for batch in plan_batches(self._fresh(), batch_size=self.batch_size))

    def _fresh(self) -> Iterator[PreparedOrder]:
        """Orders never sent, in file order; local refusals are recorded on the way."""
        refusals: list[OrderOutcome] = []
        for record in read_source(self.path, self.source_format):
            if record.line in self.state.final or record.line in self.state.last_sent:
                continue
            if record.ref is not None:
                self.refs[record.line] = record.ref
            outcome: OrderOutcome | PreparedOrder
            if record.errors:
                outcome = OrderOutcome(
                    index=record.line,
                    status="rejected",
                    idempotency_key="",
                    errors=record.errors,
                    message="not sent: the line is not an order",
                )
            else:
                outcome = self.client._prepare_or_reject(record.payload, index=record.line, key=None)
            if isinstance(outcome, OrderOutcome):
                refusals.append(outcome)
                continue
            if refusals:
                self.settled(refusals)
                refusals = []
            yield outcome
        if refusals:
            self.settled(refusals)

    def _execute(self, work: Iterator[_Work]) -> None:
        self._report()
        in_flight: set[Future[list[OrderOutcome]]] = set()
        executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="orderpipe-import")
        finished = False
        try:
            exhausted = False
            while True:
                while not exhausted and len(in_flight) < self.concurrency:
                    item = next(work, None)
                    if item is None:
                        exhausted = True
                        break
                    with self.lock:
                        self.bodies.update((order.index, order.body) for order in item.orders)
                    in_flight.add(
                        executor.submit(
                            self.client.submit_prepared,
                            item.orders,
                            batch_key=item.key,
                            listener=self,
                            cancel=self.cancel,
                        )
                    )
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    in_flight.discard(future)
                    future.result()  # an authentication error, say, ends the import
                self._report()
            finished = True
        finally:
            if not finished:
                self.cancel.set()  # in-flight requests stop retrying; what they settle is still recorded
                if in_flight:
                    log.warning("stopping: waiting for %d requests in flight to end", len(in_flight))
            executor.shutdown(wait=True, cancel_futures=True)
        self._report()

    def _report(self) -> None:
        if self.progress is None:
            return
        with self.lock:
            accepted = self.state.count("accepted")
            rejected = len(self.state.final) - accepted
            failed = len(self.failed_now)
            snapshot = ImportProgress(
                total=self.total,
                done=accepted + rejected + failed,
                accepted=accepted,
                rejected=rejected,
                failed=failed,
                skipped=self.skipped,
                elapsed=time.monotonic() - self.started,
            )
        self.progress(snapshot)


def import_file(
    path: Path | str,
    client: OrderpipeClient,
    *,
    outcome_path: Path | str | None = None,
    rate: float | None = None,
    concurrency: int = 4,
    batch_size: int = MAX_ORDERS_PER_BATCH,
    source_format: SourceFormat | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> ImportResult:
    """Submit every order of a JSON Lines (or CSV) file; record each line's outcome; resumable.

    `outcome_path` defaults to `<file>.outcome.jsonl`; run again with the same one to resume (lines
    with a final outcome are skipped, lines in flight are re-sent exactly as before). `rate` caps
    orders per second (batches are then at most about one second's worth); `concurrency` is the
    number of batch requests in flight. `progress` is called from the calling thread after each
    batch; an exception it raises stops the import (in-flight requests finish and are recorded).
    Setting `cancel` stops it too (OperationCancelledError). Raises OutcomeFileError when the
    outcome file belongs to another file, SourceFormatError for a CSV without the required columns.
    """
    source = Path(path)
    source_format = source_format or detect_format(source)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if rate is not None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        batch_size = max(1, min(batch_size, int(rate)))
    outcomes = Path(outcome_path) if outcome_path is not None else default_outcome_path(source)
    digest, size = _sha256_of(source)
    header = {
        "format": OUTCOME_FORMAT,
        "version": OUTCOME_VERSION,
        "source": source.name,
        "source_format": source_format,
        "source_sha256": digest,
        "source_bytes": size,
    }
    log, state = OutcomeLog.open(outcomes, header)
    try:
        importer = _Importer(
            path=source,
            source_format=source_format,
            client=client,
            log=log,
            state=state,
            rate=rate,
            concurrency=concurrency,
            batch_size=batch_size,
            progress=progress,
            cancel=cancel or threading.Event(),
        )
        return importer.run()
    finally:
        log.close()


def iter_refusals(path: Path) -> Iterable[dict[str, Any]]:
    """The final `rejected` records of an outcome file, by line."""
    state = read_outcomes(path)
    return [
        state.final[line] for line in sorted(state.final) if state.final[line].get("status") == "rejected"
    ]


__all__ = [
    "ImportProgress",
    "ImportResult",
    "OperationCancelledError",
    "OutcomeFileError",
    "OutcomeLog",
    "OutcomeState",
    "RateLimiter",
    "SourceFormatError",
    "SourceRecord",
    "default_outcome_path",
    "import_file",
    "iter_refusals",
    "read_csv",
    "read_jsonl",
    "read_outcomes",
]
