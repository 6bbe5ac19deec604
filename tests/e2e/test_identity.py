"""Producers over HTTP: refused credentials, tenancy of reads and of idempotency keys, revocation, IAM.

Every refusal is checked from the outside: the gateway's status and error shape, and that nothing
reached the queue or the writer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from orderpipe_client.bulk import read_outcomes
from orderpipe_client.cli import EXIT_REFUSED
from orderpipe_devenv.aws.moto_server import MotoServerProcess
from orderpipe_devenv.processes import free_port
from orderpipe_devenv.runtime.pipeline import LocalProducer, LocalRuntime, RuntimeConfig
from orderpipe_ops import local_pipeline
from orderpipe_testkit.auth import BearerTokenAuth, SigV4Auth, for_producer
from orderpipe_testkit.sample_orders import order_payload
from tests.e2e.conftest import E2E_TUNING, wait_for

pytestmark = pytest.mark.cassandra


def queue_is_empty(runtime: LocalRuntime) -> bool:
    assert runtime.resources is not None
    attributes = runtime.client("sqs").get_queue_attributes(
        QueueUrl=runtime.resources.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        attributes["ApproximateNumberOfMessages"]
        == attributes["ApproximateNumberOfMessagesNotVisible"]
        == "0"
    )


def assert_refused_and_nothing_enqueued(runtime: LocalRuntime, send: Any, status: int, code: str) -> None:
    """`send()` is answered `status` with the gateway's error `code`, and no order reaches the pipeline."""
    wait_for(lambda: queue_is_empty(runtime), timeout=30, what="the queue to drain")
    assert runtime.event_source is not None
    records_before = runtime.event_source.stats.records
    response = send()
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    time.sleep(1.5)
    assert queue_is_empty(runtime)
    assert runtime.event_source.stats.records == records_before


def post_with_token(runtime: LocalRuntime, token: str) -> httpx.Response:
    return httpx.post(
        f"{runtime.url}/orders",
        json=order_payload(41),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def readable(client: httpx.Client, order_id: str) -> dict[str, Any] | None:
    response = client.get(f"/orders/{order_id}")
    return response.json() if response.status_code == 200 else None


@pytest.fixture(scope="module")
def other_producer(local_runtime: LocalRuntime) -> LocalProducer:
    return local_runtime.add_producer("e2e-other-producer")


@pytest.fixture(scope="module")
def auditor(local_runtime: LocalRuntime) -> LocalProducer:
    return local_runtime.add_producer("e2e-auditor", scopes=("orders/read",), read_all=True)


def client_for(runtime: LocalRuntime, producer: LocalProducer) -> httpx.Client:
    return httpx.Client(base_url=runtime.url, auth=for_producer(producer), timeout=10)


# --- refused credentials ---------------------------------------------------------------------------


def test_no_token_is_401(local_runtime):
    assert_refused_and_nothing_enqueued(
        local_runtime,
        lambda: httpx.post(f"{local_runtime.url}/orders", json=order_payload(40), timeout=10),
        401,
        "UNAUTHORIZED",
    )


def test_a_token_with_a_forged_signature_is_401(local_runtime, producer):
    # Given a token with the right claims and key id, signed with a key that is not the issuer's
    assert local_runtime.issuer is not None
    genuine = local_runtime.issuer.mint(producer.client_id, ["orders/write"])
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    forged = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": local_runtime.issuer.key_id})
    # When it is used, Then the gateway refuses it and nothing is enqueued
    assert_refused_and_nothing_enqueued(
        local_runtime, lambda: post_with_token(local_runtime, forged), 401, "UNAUTHORIZED"
    )


@pytest.mark.parametrize(
    ("what", "claims"),
    [
        ("expired", {"exp": int(time.time()) - 120, "iat": int(time.time()) - 3720}),
        ("wrong issuer", {"iss": "https://issuer.example.com/someone-else"}),
        ("wrong audience", {"aud": "another-api"}),
        ("an id token", {"token_use": "id"}),
    ],
)
def test_a_genuinely_signed_but_invalid_token_is_401(local_runtime, producer, what, claims):
    # Given a token signed by the issuer itself but expired, or for another issuer or audience
    assert local_runtime.issuer is not None
    token = local_runtime.issuer.mint(producer.client_id, ["orders/write"], **claims)
    # When it is used, Then it is refused as no credential at all
    assert_refused_and_nothing_enqueued(
        local_runtime, lambda: post_with_token(local_runtime, token), 401, "UNAUTHORIZED"
    )


def test_a_token_without_the_write_scope_cannot_post(local_runtime, auditor):
    # Given a read-only producer's valid token
    with client_for(local_runtime, auditor) as client:
        # When it posts, Then the policy denies the route: 403, nothing enqueued
        assert_refused_and_nothing_enqueued(
            local_runtime, lambda: client.post("/orders", json=order_payload(42)), 403, "ACCESS_DENIED"
        )


def test_a_client_that_is_no_producer_is_403(local_runtime):
    # Given a validly signed token of a client the producers table does not know
    assert local_runtime.issuer is not None
    token = local_runtime.issuer.mint("unregistered-client", ["orders/write"])
    assert_refused_and_nothing_enqueued(
        local_runtime, lambda: post_with_token(local_runtime, token), 403, "ACCESS_DENIED"
    )


def test_a_revoked_producer_is_refused_within_the_cache_ttl(local_runtime):
    # Given a producer that posts successfully
    doomed = local_runtime.add_producer("e2e-doomed")
    auth = for_producer(doomed)
    with httpx.Client(base_url=local_runtime.url, auth=auth, timeout=10) as client:
        assert client.post("/orders", json=order_payload(43)).status_code == 202
        # When it is revoked
        local_runtime.revoke_producer("e2e-doomed")
        revoked_at = time.monotonic()
        # Then within the authorizer cache TTL (2 s here) its token, still unexpired, is refused
        wait_for(
            lambda: client.post("/orders", json=order_payload(44)).status_code == 403,
            timeout=E2E_TUNING.authorizer_cache_ttl_seconds + 5,
            what="the revoked producer to be refused",
        )
        assert time.monotonic() - revoked_at <= E2E_TUNING.authorizer_cache_ttl_seconds + 5
        # (while API Gateway's cached allow lives, the deleted usage-plan key refuses it as
        # INVALID_API_KEY; once that entry expires the authorizer itself denies the producer)
        time.sleep(max(0.0, revoked_at + E2E_TUNING.authorizer_cache_ttl_seconds + 0.5 - time.monotonic()))
        assert_refused_and_nothing_enqueued(
            local_runtime, lambda: client.post("/orders", json=order_payload(45)), 403, "ACCESS_DENIED"
        )
        # ...and no new token is issued to it (its app client is gone)
        assert (
            httpx.post(
                doomed.token_url or "",
                data={"grant_type": "client_credentials"},
                auth=(doomed.client_id or "", doomed.client_secret or ""),
            ).status_code
            == 401
        )


# --- tenancy ---------------------------------------------------------------------------------------


def test_a_producer_reads_its_own_orders_another_gets_404_and_read_all_reads_all(
    local_runtime, api, producer, other_producer, auditor
):
    # Given an order posted by one producer and stored
    order_id = api.post("/orders", json=order_payload(50)).json()["order_id"]
    stored = wait_for(lambda: readable(api, order_id), timeout=20, what="the order to be readable")
    # Then it names its producer (from the token, not the body)
    assert stored["producer"] == producer.name
    with client_for(local_runtime, other_producer) as other, client_for(local_runtime, auditor) as reader:
        # When another producer reads it: the same 404 as an unknown id (no existence oracle), even now
        # that the order is in the read cache
        denied, unknown = other.get(f"/orders/{order_id}"), other.get(f"/orders/{uuid.uuid4()}")
        assert denied.status_code == unknown.status_code == 404
        assert denied.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
        assert set(denied.headers) >= {"retry-after"}
        # ...while a read-all caller reads it
        assert reader.get(f"/orders/{order_id}").json()["producer"] == producer.name


def test_the_same_idempotency_key_from_two_producers_makes_two_orders(local_runtime, api, other_producer):
    # Given two producers that both number their keys the same way, posting the same body
    key, payload = f"order-{uuid.uuid4().hex[:6]}-1", order_payload(60)
    with client_for(local_runtime, other_producer) as other:
        first = api.post("/orders", json=payload, headers={"Idempotency-Key": key})
        second = other.post("/orders", json=payload, headers={"Idempotency-Key": key})
        # Then each gets its own order...
        assert first.status_code == second.status_code == 202
        first_id, second_id = first.json()["order_id"], second.json()["order_id"]
        assert first_id != second_id
        # ...and both are stored, each its producer's
        assert (
            wait_for(lambda: readable(api, first_id), timeout=20, what="the first order")["producer"]
            == "e2e-producer"
        )
        assert (
            wait_for(lambda: readable(other, second_id), timeout=20, what="the second order")["producer"]
            == "e2e-other-producer"
        )
        # ...and each producer's retry still replays its own answer
        assert (
            api.post("/orders", json=payload, headers={"Idempotency-Key": key}).json()["order_id"] == first_id
        )


# --- iam mode --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iam_runtime(cassandra_endpoint: Any) -> Iterator[LocalRuntime]:
    with MotoServerProcess() as moto:
        config = RuntimeConfig(
            port=free_port(),
            auth="iam",
            keyspace="orderpipe_e2e_iam",
            tuning=E2E_TUNING,
            name_prefix="orderpipe-iam",
        )
        with LocalRuntime(
            config,
            cassandra_env=cassandra_endpoint.settings_env("orderpipe_e2e_iam"),
            aws_endpoint_url=moto.endpoint_url,
        ) as runtime:
            yield runtime


def test_iam_mode_a_signed_request_is_the_principals_and_a_bad_signature_is_403(iam_runtime):
    # Given a producer with IAM credentials and its usage-plan key
    producer = iam_runtime.add_producer("iam-producer")
    with httpx.Client(base_url=iam_runtime.url, auth=for_producer(producer), timeout=10) as client:
        # When it posts a signed order, Then it is accepted and stored as the principal's
        order_id = client.post("/orders", json=order_payload(70)).json()["order_id"]
        stored = wait_for(lambda: readable(client, order_id), timeout=20, what="the order to be readable")
        assert stored["producer"] == producer.principal
    # When a request is signed with the wrong secret, Then 403 INVALID_SIGNATURE and nothing enqueued
    wrong = SigV4Auth(
        access_key_id=producer.access_key_id or "",
        secret_access_key="not-the-secret",
        region="us-east-1",
        api_key=producer.api_key,
    )
    assert_refused_and_nothing_enqueued(
        iam_runtime,
        lambda: httpx.post(f"{iam_runtime.url}/orders", json=order_payload(71), auth=wrong, timeout=10),
        403,
        "INVALID_SIGNATURE",
    )
    # ...and a bearer token means nothing in iam mode
    assert_refused_and_nothing_enqueued(
        iam_runtime,
        lambda: httpx.post(
            f"{iam_runtime.url}/orders", json=order_payload(72), auth=BearerTokenAuth("x.y.z"), timeout=10
        ),
        403,
        "MISSING_AUTHENTICATION_TOKEN",
    )


def test_iam_mode_orderpipe_submit_with_no_url_signs_with_the_state_files_credentials(iam_runtime, tmp_path):
    # Given an iam-mode pipeline's state file, as `orderpipe run --auth iam` writes it (its producer's
    # IAM access key and usage-plan key), and a file of 20 orders, the 8th invalid
    state_dir = tmp_path / "state"
    local_pipeline.write(iam_runtime.describe(cassandra_source="e2e"), state_dir / local_pipeline.FILE_NAME)
    source = tmp_path / "orders.jsonl"
    orders = [order_payload(300 + n) for n in range(20)]
    orders[7]["items"][0]["quantity"] = 0
    source.write_text("".join(json.dumps(order) + "\n" for order in orders))
    # When `orderpipe submit FILE` runs with no URL and no credentials, none in the environment
    # either (no AWS_* variables, a HOME without ~/.aws)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("orderpipe")), "submit", str(source)],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ORDERPIPE_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it found the pipeline, signed its requests (accepted, not 403) and exited 1 for the refusal
    assert "pipeline: the local pipeline of `orderpipe run`" in done.stderr
    assert done.returncode == EXIT_REFUSED, done.stderr[-3000:]
    final = read_outcomes(source.with_name("orders.jsonl.outcome.jsonl")).final
    assert sorted(line for line, record in final.items() if record["status"] == "rejected") == [8]
    accepted = [record["order_id"] for record in final.values() if record["status"] == "accepted"]
    assert len(accepted) == 19
    # ...and the orders are the state file's producer's (read back signed as that producer)
    producer = iam_runtime.default_producer()
    with httpx.Client(base_url=iam_runtime.url, auth=for_producer(producer), timeout=10) as client:
        stored = wait_for(lambda: readable(client, accepted[-1]), timeout=30, what="an imported order")
    assert stored["producer"] == producer.principal


def orderpipe_producers(runtime: LocalRuntime, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`orderpipe producers ARGS` in a new terminal, pointed at `runtime`'s emulator (no AWS credentials)."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("orderpipe")),
            "producers",
            *args,
            *("--prefix", runtime.config.name_prefix, "--endpoint-url", runtime.aws_endpoint_url),
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_iam_mode_a_producer_added_with_the_cli_signs_its_requests_until_revoked(iam_runtime, tmp_path):
    # Given a producer added to the running iam-mode pipeline with `orderpipe producers add`
    added = orderpipe_producers(iam_runtime, "add", "cli-producer", home=tmp_path)
    assert added.returncode == 0, added.stderr
    printed = dict(
        line.split(":", 1) for line in added.stdout.splitlines() if ":" in line and not line.startswith(" ")
    )
    auth = SigV4Auth(
        access_key_id=printed["access key id"].strip(),
        secret_access_key=printed["secret key"].split()[0],
        region="us-east-1",
        api_key=printed["API key"].split()[0],
    )
    principal = printed["principal"].strip()
    with httpx.Client(base_url=iam_runtime.url, auth=auth, timeout=10) as client:
        # When it posts an order signed with the printed access key (the gateway re-reads the usage
        # plan's keys every second)
        posted = wait_for(
            lambda: (answer := client.post("/orders", json=order_payload(80))).status_code == 202 and answer,
            timeout=10,
            what="the new producer's order to be accepted",
        )
        # Then it is accepted and stored as the IAM user's
        stored = wait_for(
            lambda: readable(client, posted.json()["order_id"]), timeout=20, what="the order to be readable"
        )
        assert stored["producer"] == principal
        # When the producer is revoked with the CLI
        revoked = orderpipe_producers(iam_runtime, "revoke", "cli-producer", home=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        # Then, once the gateway re-read the usage plan's keys (every second), its signed requests are
        # refused (its key is disabled) and nothing is enqueued
        time.sleep(1.5)
        assert_refused_and_nothing_enqueued(
            iam_runtime, lambda: client.post("/orders", json=order_payload(81)), 403, "INVALID_API_KEY"
        )


def test_a_producer_name_longer_than_a_message_group_id_posts_and_reads_its_orders(local_runtime):
    # Given a producer whose name is longer than the 128 characters SQS takes in a MessageGroupId (the
    # local runtime's ElasticMQ checks group ids as SQS does)
    producer = local_runtime.add_producer("long-" + "p" * 195)
    with httpx.Client(base_url=local_runtime.url, auth=for_producer(producer), timeout=10) as client:
        # When it posts an order
        posted = client.post("/orders", json=order_payload(90))
        # Then it is accepted (not a 503 from a refused group id), stored and read back as the producer's
        assert posted.status_code == 202, posted.text
        stored = wait_for(
            lambda: readable(client, posted.json()["order_id"]), timeout=20, what="the order to be readable"
        )
    assert stored["producer"] == producer.name
