"""The bulk importer's outcome file: append-only, survives a torn last line, says what to re-send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orderpipe_client.bulk import (
    OUTCOME_FORMAT,
    OUTCOME_VERSION,
    OutcomeFileError,
    OutcomeLog,
    SentBatch,
    SourceFormatError,
    read_csv,
    read_jsonl,
    read_outcomes,
)

HEADER = {
    "format": OUTCOME_FORMAT,
    "version": OUTCOME_VERSION,
    "source": "orders.jsonl",
    "source_format": "jsonl",
    "source_sha256": "a" * 64,
}


def sending(key: str, lines: list[int]) -> dict[str, Any]:
    return {"sending": {"key": key, "lines": lines, "body_sha256": "b" * 64}}


def write(path: Path, records: list[dict[str, Any]], tail: bytes = b"") -> None:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail)


def test_a_new_outcome_file_starts_with_its_header(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    log, state = OutcomeLog.open(path, HEADER)
    log.close()
    assert state.final == {} and state.last_sent == {}
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"header": HEADER}]


def test_a_torn_last_line_is_dropped_and_appends_continue_after_the_intact_part(tmp_path: Path) -> None:
    # Given a file whose last append was cut short by a kill
    path = tmp_path / "out.jsonl"
    intact = [{"header": HEADER}, sending("k1", [1, 2]), {"line": 1, "status": "accepted", "order_id": "x"}]
    write(path, intact, tail=b'{"line": 2, "status": "acc')
    # When it is opened again and a record appended
    log, state = OutcomeLog.open(path, HEADER)
    log.append([{"line": 2, "status": "accepted", "order_id": "y"}])
    log.close()
    # Then the torn bytes are gone, line 1 was kept, and the file is whole JSON Lines
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [*intact, {"line": 2, "status": "accepted", "order_id": "y"}]
    assert set(state.final) == {1}


def test_a_complete_last_record_without_its_newline_counts_as_torn(tmp_path: Path) -> None:
    # Given a last record that parses but whose newline never made it to the file
    path = tmp_path / "out.jsonl"
    write(path, [{"header": HEADER}], tail=b'{"line": 1, "status": "accepted", "order_id": "x"}')
    # Then it is not trusted (its batch is sent again; the server answers the same id)
    _, state = OutcomeLog.open(path, HEADER)
    assert state.final == {}
    assert path.read_bytes().endswith(b"}\n")


def test_damage_before_the_last_line_is_not_silently_skipped(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(
        json.dumps({"header": HEADER}).encode() + b"\nnot json\n" + b'{"line": 1, "status": "accepted"}\n'
    )
    with pytest.raises(OutcomeFileError, match="line 2 is damaged"):
        OutcomeLog.open(path, HEADER)


def test_the_outcome_file_of_another_source_is_refused(tmp_path: Path) -> None:
    # Given an outcome file written for another file's content
    path = tmp_path / "out.jsonl"
    write(path, [{"header": {**HEADER, "source_sha256": "c" * 64}}, {"line": 1, "status": "accepted"}])
    # Then it cannot be used to resume this import (it would skip the wrong lines)
    with pytest.raises(OutcomeFileError, match="another file"):
        OutcomeLog.open(path, HEADER)


def test_a_file_that_is_not_an_outcome_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    write(path, [{"customer_id": "c"}])
    with pytest.raises(OutcomeFileError, match="not an import outcome file"):
        OutcomeLog.open(path, HEADER)


def test_only_the_last_batch_of_each_unsettled_line_is_sent_again(tmp_path: Path) -> None:
    # Given: batch B (lines 1-4) answered 1 accepted, 2 rejected, 3 and 4 failed; the failed ones were
    # re-sent as batch S, and the run died before S answered. Batch C (lines 5-6) was sent and died too.
    path = tmp_path / "out.jsonl"
    write(
        path,
        [
            {"header": HEADER},
            sending("B", [1, 2, 3, 4]),
            sending("C", [5, 6]),
            {"line": 1, "status": "accepted", "order_id": "x"},
            {"line": 2, "status": "rejected", "errors": []},
            sending("S", [3, 4]),
        ],
    )
    # When the state is read
    state = read_outcomes(path)
    # Then S and C are re-sent as they were, B is not (its other lines are settled)
    assert [batch.key for batch in state.unfinished_batches()] == ["S", "C"]
    assert state.unfinished_batches()[0] == SentBatch(key="S", lines=(3, 4), body_sha256="b" * 64)
    assert set(state.final) == {1, 2}


def test_a_failed_line_is_not_final_and_an_accepted_one_is(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write(
        path,
        [
            {"header": HEADER},
            sending("B", [1]),
            {"line": 1, "status": "failed", "message": "503"},
        ],
    )
    state = read_outcomes(path)
    assert state.final == {} and set(state.failed) == {1}
    assert [batch.key for batch in state.unfinished_batches()] == ["B"]
    with path.open("a") as file:
        file.write(json.dumps({"line": 1, "status": "accepted", "order_id": "x"}) + "\n")
    state = read_outcomes(path)
    assert set(state.final) == {1} and state.failed == {} and state.unfinished_batches() == []


def test_jsonl_lines_are_numbered_as_in_the_file_and_bad_lines_say_why(tmp_path: Path) -> None:
    # Given a file with a blank line, a line that is not JSON and one with a NaN
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b'{"a": 1.10}\n\n{"a": \nNaN\n\xff\n')
    records = list(read_jsonl(path))
    # Then lines keep their numbers, the decimal stays exact, and the bad lines carry their reason
    assert [record.line for record in records] == [1, 3, 4, 5]
    assert str(records[0].payload["a"]) == "1.10"
    assert [record.errors[0].type for record in records[1:]] == ["json_invalid", "json_invalid", "not_utf8"]


def test_csv_rows_are_grouped_into_orders_by_order_ref(tmp_path: Path) -> None:
    # Given two orders, one with two line items and an address, and an order whose rows are split
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_ref,customer_id,currency,sku,quantity,unit_price,"
        "ship_name,ship_line1,ship_city,ship_postal_code,ship_country\n"
        "po-1,cust-1,EUR,SKU-1,2,19.99,Ada,1 Street,London,N1,GB\n"
        "po-1,,,SKU-2,1,5.00,,,,,\n"
        "po-2,cust-2,USD,SKU-3,x,1,,,,,\n"
        "po-1,cust-1,EUR,SKU-4,1,1,,,,,\n"
    )
    records = list(read_csv(path))
    # Then po-1 is one order from lines 2-3, po-2 carries its bad quantity for the server to refuse by
    # name, and the stray po-1 row is refused locally
    assert [(record.line, record.ref) for record in records] == [(2, "po-1"), (4, "po-2"), (5, "po-1")]
    assert records[0].payload == {
        "customer_id": "cust-1",
        "currency": "EUR",
        "client_reference": "po-1",
        "shipping_address": {
            "name": "Ada",
            "line1": "1 Street",
            "city": "London",
            "postal_code": "N1",
            "country": "GB",
        },
        "items": [
            {"sku": "SKU-1", "quantity": 2, "unit_price": "19.99"},
            {"sku": "SKU-2", "quantity": 1, "unit_price": "5.00"},
        ],
    }
    assert records[1].payload["items"] == [{"sku": "SKU-3", "quantity": "x", "unit_price": "1"}]
    assert records[2].payload is None and records[2].errors[0].type == "not_contiguous"


def test_an_outcome_file_in_use_by_another_import_is_refused(tmp_path: Path) -> None:
    # Given an import holding the outcome file open
    path = tmp_path / "out.jsonl"
    log, _ = OutcomeLog.open(path, HEADER)
    # When a second import opens it, Then it is refused; once the first is done, it is free
    with pytest.raises(OutcomeFileError, match="in use by another import"):
        OutcomeLog.open(path, HEADER)
    log.close()
    second, _ = OutcomeLog.open(path, HEADER)
    second.close()


def test_csv_rows_of_one_order_that_disagree_are_refused_locally(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_ref,customer_id,currency,sku,quantity,unit_price\npo-1,cust-1,EUR,SKU-1,1,1\npo-1,cust-1,USD,SKU-2,1,1\n"
    )
    (record,) = read_csv(path)
    assert record.payload is None
    assert [(error.field, error.type) for error in record.errors] == [("currency", "inconsistent")]


def test_a_csv_without_the_required_columns_is_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_ref,customer,currency,sku,quantity,unit_price\npo-1,c,EUR,S,1,1\n")
    with pytest.raises(SourceFormatError, match="missing columns customer_id; unknown columns customer"):
        list(read_csv(path))
