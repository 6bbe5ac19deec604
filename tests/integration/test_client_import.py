"""Bulk import against the scripted API on 127.0.0.1: outcomes, refusals, resuming after an interruption.

"Stored once" is the server's view: each line's client_reference is stored under exactly one order
id, whatever was sent twice on the way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from orderpipe_client import OperationCancelledError, OrderpipeClient, RetryPolicy, cli
from orderpipe_client.bulk import ImportProgress, import_file, read_outcomes
from tests.scripted_orders_api import Delay, DropAfterProcessing, ScriptedOrdersApi, order

pytestmark = pytest.mark.timeout(180)

FAST = RetryPolicy(max_attempts=6, base_delay=0.05, max_delay=0.5, deadline=30)


class StopImportError(Exception):
    """Raised from a progress callback to interrupt an import."""


@pytest.fixture
def api() -> Iterator[ScriptedOrdersApi]:
    server = ScriptedOrdersApi(api_key="key")
    server.start()
    yield server
    server.stop()


def write_orders(path: Path, count: int, *, invalid: Collection[int] = ()) -> set[str]:
    """`count` JSON lines (line n has client_reference line-n; lines in `invalid` have quantity 0)."""
    with path.open("w") as file:
        for line in range(1, count + 1):
            file.write(json.dumps(order(f"line-{line}", quantity=0 if line in invalid else 1)) + "\n")
    return {f"line-{line}" for line in range(1, count + 1) if line not in invalid}


def final_statuses(outcome_path: Path) -> dict[int, str]:
    return {line: record["status"] for line, record in read_outcomes(outcome_path).final.items()}


def assert_stored_once(api: ScriptedOrdersApi, references: set[str]) -> None:
    stored = api.stored_by_reference()
    assert set(stored) == references, set(stored) ^ references
    twice = {reference: ids for reference, ids in stored.items() if len(ids) != 1}
    assert not twice, f"stored under more than one id: {list(twice.items())[:3]}"


def keys_per_reference(api: ScriptedOrdersApi) -> dict[str, set[str | None]]:
    found: dict[str, set[str | None]] = {}
    for post in api.posts("/orders/batch"):
        for item in post.json():
            found.setdefault(item["client_reference"], set()).add(post.key)
    return found


def test_every_line_gets_its_outcome_and_refusals_name_their_fields(
    api: ScriptedOrdersApi, tmp_path: Path
) -> None:
    # Given 300 lines: three invalid orders, one line that is not JSON, and a blank line
    source, outcomes = tmp_path / "orders.jsonl", tmp_path / "outcomes.jsonl"
    valid = write_orders(source, 300, invalid={10, 150, 299})
    with source.open("a") as file:
        file.write("\n{not json\n")
    # When it is imported
    with OrderpipeClient(api.url, api_key="key", retry=FAST) as client:
        result = import_file(source, client, outcome_path=outcomes, concurrency=2, batch_size=50)
    # Then the counts say so, and each valid line's recorded id is the one the server stored for it
    assert (result.total, result.accepted, result.rejected, result.failed) == (301, 297, 4, 0)
    assert not result.ok
    state = read_outcomes(outcomes)
    stored = api.stored_by_reference()
    for line in range(1, 301):
        if f"line-{line}" in valid:
            assert {state.final[line]["order_id"]} == {str(i) for i in stored[f"line-{line}"]}
    # And the refusals name their fields; the line that is not JSON was never sent
    assert [state.final[line]["errors"][0]["field"] for line in (10, 150, 299)] == ["items.0.quantity"] * 3
    assert state.final[302]["errors"][0]["type"] == "json_invalid"
    assert sum(len(post.json()) for post in api.posts()) == 300
    assert_stored_once(api, valid)


def test_an_import_stopped_between_batches_resumes_without_resending_settled_lines(
    api: ScriptedOrdersApi, tmp_path: Path
) -> None:
    # Given 500 lines (5 invalid), and a progress callback that stops the import after two reports
    source, outcomes = tmp_path / "orders.jsonl", tmp_path / "outcomes.jsonl"
    valid = write_orders(source, 500, invalid={1, 100, 200, 300, 499})
    reports: list[ImportProgress] = []

    def stop_after_two(progress: ImportProgress) -> None:
        reports.append(progress)
        if len(reports) == 3:  # the first report comes before anything is sent
            raise StopImportError

    with OrderpipeClient(api.url, api_key="key", retry=FAST) as client:
        with pytest.raises(StopImportError):
            import_file(
                source, client, outcome_path=outcomes, concurrency=1, batch_size=50, progress=stop_after_two
            )
        settled_first = set(final_statuses(outcomes))
        posts_first = len(api.posts())
        # When it is run again with the same outcome file
        result = import_file(source, client, outcome_path=outcomes, concurrency=2, batch_size=50)
    # Then the first run settled some lines, the second sent none of them again, and finished the rest
    assert 0 < len(settled_first) < 500
    resent = {item["client_reference"] for post in api.posts()[posts_first:] for item in post.json()}
    assert not resent & {f"line-{line}" for line in settled_first}
    assert (result.accepted, result.rejected, result.failed, result.skipped) == (
        495,
        5,
        0,
        len(settled_first),
    )
    assert_stored_once(api, valid)


@pytest.mark.parametrize("rerun_batch_size", [20, 7], ids=["same-batch-size", "another-batch-size"])
def test_a_batch_in_flight_when_interrupted_is_resent_with_the_same_key_and_stored_once(
    api: ScriptedOrdersApi, tmp_path: Path, rerun_batch_size: int
) -> None:
    # Given an import whose second batch the server stores but whose answer is lost, and which is
    # cancelled right then; and a server that forgets its keys before the import is run again (with
    # the same batch size, or another: the journaled batch must still be re-sent as it was)
    source, outcomes = tmp_path / "orders.jsonl", tmp_path / "outcomes.jsonl"
    valid = write_orders(source, 100)
    cancel = threading.Event()
    api.script = [Delay(0), DropAfterProcessing()]
    api.on_request = lambda request: cancel.set() if len(api.posts()) == 2 else None
    with OrderpipeClient(api.url, api_key="key", retry=FAST) as client:
        with pytest.raises(OperationCancelledError):
            import_file(source, client, outcome_path=outcomes, concurrency=1, batch_size=20, cancel=cancel)
        interrupted = api.posts()[-1]
        assert interrupted.outcome == "dropped"
        api.on_request = None
        api.forget_keys()
        # When the import runs again
        result = import_file(
            source, client, outcome_path=outcomes, concurrency=1, batch_size=rerun_batch_size
        )
    # Then the lost batch was sent first, exactly as before, and every line is stored once
    resent = api.posts()[2]
    assert (resent.key, resent.body) == (interrupted.key, interrupted.body)
    assert result.accepted == 100 and result.ok
    assert_stored_once(api, valid)
    assert {len(keys) for keys in keys_per_reference(api).values()} == {1}


def run_cli(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "orderpipe_client", "submit", *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ORDERPIPE_API_KEY": "key"},
        )


def test_an_import_killed_half_way_and_run_again_stores_every_line_once(
    api: ScriptedOrdersApi, tmp_path: Path
) -> None:
    # Given 5,000 lines of which 20 are invalid, imported by the command line in a process of its own
    # against a server that takes a moment per batch
    source, outcomes, log = tmp_path / "orders.jsonl", tmp_path / "outcomes.jsonl", tmp_path / "cli.log"
    invalid = set(range(7, 5000, 250))
    assert len(invalid) == 20
    valid = write_orders(source, 5000, invalid=invalid)
    api.script = [Delay(0.05)] * 1000
    half_way = threading.Event()
    api.on_request = lambda request: half_way.set() if len(api.posts()) >= 25 else None
    arguments = [str(source), "--url", api.url, "--outcome", str(outcomes), "--concurrency", "4"]
    # When it is killed (SIGKILL) once the server has had half the batches, with some in flight
    process = run_cli(arguments, log)
    assert half_way.wait(timeout=60), log.read_text()
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    time.sleep(0.2)  # let the server finish what was in flight (as a real one would)
    settled_before = len(final_statuses(outcomes))
    # ... and run again, with the server having forgotten every key (its idempotency window passed)
    api.forget_keys()
    api.script = []
    api.on_request = None
    rerun = run_cli(arguments, log)
    exit_code = rerun.wait(timeout=120)
    # Then it exits non-zero for the refusals, every valid line is stored exactly once, and the
    # outcome file holds the 20 refusals
    assert exit_code == cli.EXIT_REFUSED, log.read_text()
    assert settled_before < 5000
    assert_stored_once(api, valid)
    statuses = final_statuses(outcomes)
    assert sorted(line for line, status in statuses.items() if status == "rejected") == sorted(invalid)
    assert sum(1 for status in statuses.values() if status == "accepted") == 4980
    assert {len(keys) for keys in keys_per_reference(api).values()} == {1}


def test_a_rerun_after_refusals_sends_nothing_and_still_exits_non_zero(
    api: ScriptedOrdersApi, tmp_path: Path
) -> None:
    # Given a file with one invalid line, imported to the end
    source, outcomes = tmp_path / "orders.jsonl", tmp_path / "outcomes.jsonl"
    write_orders(source, 30, invalid={3})
    arguments = ["submit", str(source), "--url", api.url, "--api-key", "key", "--outcome", str(outcomes)]
    assert cli.main(arguments) == cli.EXIT_REFUSED
    posts = len(api.posts())
    # When the same command runs again, Then it sends nothing and still reports the refusal
    assert cli.main(arguments) == cli.EXIT_REFUSED
    assert len(api.posts()) == posts


def test_a_clean_import_exits_zero_and_a_bad_outcome_file_exits_two(
    api: ScriptedOrdersApi, tmp_path: Path
) -> None:
    source, other = tmp_path / "orders.jsonl", tmp_path / "other.jsonl"
    write_orders(source, 10)
    write_orders(other, 11)
    assert cli.main(["submit", str(source), "--url", api.url, "--api-key", "key"]) == cli.EXIT_OK
    assert (tmp_path / "orders.jsonl.outcome.jsonl").is_file()
    # The outcome file of orders.jsonl cannot resume other.jsonl
    reused = [
        "submit",
        str(other),
        "--url",
        api.url,
        "--api-key",
        "key",
        "--outcome",
        str(tmp_path / "orders.jsonl.outcome.jsonl"),
    ]
    assert cli.main(reused) == cli.EXIT_USAGE


def test_a_csv_file_is_imported_one_order_per_order_ref(api: ScriptedOrdersApi, tmp_path: Path) -> None:
    # Given a CSV with two orders, the first of two line items
    source = tmp_path / "orders.csv"
    source.write_text(
        "order_ref,customer_id,currency,sku,quantity,unit_price\n"
        "po-1,cust-1,EUR,SKU-1,2,19.99\n"
        "po-1,cust-1,EUR,SKU-2,1,5\n"
        "po-2,cust-2,USD,SKU-3,1,0.10\n"
    )
    # When it is imported
    assert cli.main(["submit", str(source), "--url", api.url, "--api-key", "key"]) == cli.EXIT_OK
    # Then two orders are stored, with their items, under their order_ref as client_reference
    stored = {order["client_reference"]: order for order in api.stored.values()}
    assert set(stored) == {"po-1", "po-2"}
    assert [(item["sku"], item["quantity"], item["unit_price"]) for item in stored["po-1"]["items"]] == [
        ("SKU-1", 2, "19.99"),
        ("SKU-2", 1, "5"),
    ]
