"""`orderpipe submit` against the real local pipeline: killed half-way, run again, each line stored once.

Everything is real: the command in a process of its own, the API Gateway emulator, the ingest
function and its idempotency table, ElasticMQ, the writer, Cassandra. "Stored once" is counted in
Cassandra by content: each line's client_reference is in exactly one row, under the id the outcome
file recorded for that line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Session

from orderpipe_client.bulk import read_outcomes
from orderpipe_client.cli import EXIT_INTERRUPTED, EXIT_REFUSED
from orderpipe_devenv.runtime.pipeline import LocalProducer, LocalRuntime
from tests.e2e.conftest import submit_credentials_for, wait_for

pytestmark = [pytest.mark.cassandra, pytest.mark.timeout(600)]

ORDERPIPE = Path(sys.executable).with_name("orderpipe")
LINES = 5000
INVALID_LINES = frozenset(range(7, LINES, 250))  # 20 lines, spread over the file


def write_source(path: Path, run: str) -> dict[int, str]:
    """The file's lines (quantity 0 on INVALID_LINES); returns line -> client_reference of the valid."""
    references: dict[int, str] = {}
    with path.open("w") as source:
        for line in range(1, LINES + 1):
            reference = f"{run}-{line}"
            order = {
                "customer_id": f"cust-{line % 97}",
                "currency": "EUR",
                "items": [
                    {
                        "sku": f"SKU-{line % 13}",
                        "quantity": 0 if line in INVALID_LINES else 1 + line % 5,
                        "unit_price": f"{line % 1000}.{line % 100:02d}",
                    }
                ],
                "client_reference": reference,
            }
            source.write(json.dumps(order) + "\n")
            if line not in INVALID_LINES:
                references[line] = reference
    return references


def submit(
    runtime: LocalRuntime, producer: LocalProducer, source: Path, outcomes: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    credentials, environment = submit_credentials_for(producer)
    command = [
        str(ORDERPIPE),
        "submit",
        str(source),
        "--url",
        runtime.url,
        *credentials,
        "--outcome",
        str(outcomes),
        "--concurrency",
        "4",
        *extra,
    ]
    with log.open("ab") as output:
        return subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **environment}
        )


def stored_rows(session: Session, keyspace: str, run: str) -> dict[str, list[uuid.UUID]]:
    """client_reference -> the ids of the rows holding it, for this run's references."""
    found: dict[str, list[uuid.UUID]] = {}
    for row in session.execute(f"SELECT order_id, client_reference FROM {keyspace}.orders"):
        if row.client_reference and row.client_reference.startswith(f"{run}-"):
            found.setdefault(row.client_reference, []).append(row.order_id)
    return found


def settled_lines(outcomes: Path) -> int:
    return len(read_outcomes(outcomes).final) if outcomes.exists() else 0


# How an import is interrupted, and the exit status each way: SIGKILL (nothing runs after it), and
# SIGINT (Ctrl-C: the command's documented 130, after saying how to resume).
INTERRUPTIONS = {"SIGKILL": (signal.SIGKILL, -signal.SIGKILL), "SIGINT": (signal.SIGINT, EXIT_INTERRUPTED)}


@pytest.mark.parametrize("interruption", sorted(INTERRUPTIONS))
def test_an_import_interrupted_half_way_and_run_again_stores_every_valid_line_once(
    local_runtime: LocalRuntime,
    producer: LocalProducer,
    cql_session: Session,
    tmp_path: Path,
    interruption: str,
) -> None:
    # Given a file of 5,000 orders, 20 of them invalid
    run = f"bulk-{uuid.uuid4().hex[:8]}"
    source, outcomes, log = (
        tmp_path / "orders.jsonl",
        tmp_path / "orders.outcome.jsonl",
        tmp_path / "submit.log",
    )
    references = write_source(source, run)
    assert len(references) == LINES - 20
    # When `orderpipe submit` is interrupted (SIGKILL, or SIGINT as Ctrl-C sends it) once about half
    # the lines have an outcome (paced at 1,000 orders/s so that half-way lasts long enough to be
    # hit), with batches in flight
    first = submit(local_runtime, producer, source, outcomes, log, "--rate", "1000")
    wait_for(
        lambda: settled_lines(outcomes) >= LINES // 2 or first.poll() is not None,
        timeout=120,
        interval=0.02,
        what="half the lines to be settled",
    )
    sent, expected_exit = INTERRUPTIONS[interruption]
    first.send_signal(sent)
    assert first.wait(timeout=30) == expected_exit, log.read_text()
    settled_before = settled_lines(outcomes)
    if sent == signal.SIGINT:
        # Then (Ctrl-C) it said how to resume, and left an outcome file of whole records, no torn line
        assert "interrupted." in log.read_text()
        written = outcomes.read_bytes()
        assert written.endswith(b"\n")
        assert all(json.loads(line) for line in written.splitlines())
    # ...and run again, as fast as it goes, with the same outcome file
    second = submit(local_runtime, producer, source, outcomes, log)
    exit_code = second.wait(timeout=300)
    # Then it exits non-zero for the refusals, and the outcome file holds exactly the 20 refusals,
    # each naming the field, and an accepted id for every other line
    assert 0 < settled_before < LINES
    assert exit_code == EXIT_REFUSED, log.read_text()[-3000:]
    final = read_outcomes(outcomes).final
    rejected = {line for line, record in final.items() if record["status"] == "rejected"}
    assert rejected == INVALID_LINES
    assert {record["errors"][0]["field"] for line, record in final.items() if line in rejected} == {
        "items.0.quantity"
    }
    recorded = {line: record["order_id"] for line, record in final.items() if record["status"] == "accepted"}
    assert set(recorded) == set(references)
    # ...and once the writer has caught up, Cassandra holds each valid line exactly once, under the
    # id the outcome file recorded for it, and nothing for the refused lines
    keyspace = local_runtime.config.keyspace
    wait_for(
        lambda: len(stored_rows(cql_session, keyspace, run)) >= len(references),
        timeout=240,
        interval=2,
        what="4,980 orders in Cassandra",
    )
    stored = stored_rows(cql_session, keyspace, run)
    assert set(stored) == set(references.values())
    twice = {reference: ids for reference, ids in stored.items() if len(ids) != 1}
    assert not twice, f"{len(twice)} lines stored more than once, e.g. {list(twice.items())[:3]}"
    assert all(str(stored[references[line]][0]) == order_id for line, order_id in recorded.items())
