"""How the functions' Cassandra settings become the driver's TLS options and the secret reader.

Logic only (no network): TLS handshakes, authentication and the secret's rotation are tested on a
real node with TLS and PasswordAuthenticator in tests/integration/test_cassandra_security.py.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from orderpipe_common import cassandra_session
from orderpipe_common.cassandra_session import CassandraTlsError, tls_options
from orderpipe_common.settings import CassandraSettings, SettingsError, load

CA_FILE = Path(__file__).resolve().parents[1] / "infrastructure" / "data" / "cluster-ca.pem"
BASE = {
    "cassandra_contact_points": "10.0.0.1",
    "cassandra_local_dc": "dc1",
    "cassandra_keyspace": "orderpipe",
}


def settings(**overrides: Any) -> CassandraSettings:
    return load(CassandraSettings, **{**BASE, **overrides})


def test_without_tls_there_are_no_tls_options() -> None:
    assert tls_options(settings()) is None


@pytest.mark.parametrize(
    ("check", "extra", "check_hostname", "server_hostname"),
    [
        # The driver then sets server_hostname to each node's IP address itself.
        ("ip_san", {}, True, None),
        ("server_name", {"cassandra_tls_server_name": "db.example"}, True, "db.example"),
        ("chain_only", {}, False, None),
    ],
)
def test_hostname_check_policy_sets_the_context_and_the_server_name(
    check: str, extra: dict[str, str], check_hostname: bool, server_hostname: str | None
) -> None:
    # Given TLS with the cluster's CA and a host-name policy, when the driver's options are built,
    # then the chain is always verified and the name is checked as the policy says.
    options = tls_options(
        settings(
            cassandra_tls=True,
            cassandra_tls_ca_file=str(CA_FILE),
            cassandra_tls_hostname_check=check,
            **extra,
        )
    )
    assert options is not None
    context, ssl_options = options
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1  # only the given CA, not the system store
    assert (ssl_options or {}).get("server_hostname") == server_hostname


def test_without_a_ca_the_system_trust_store_is_used() -> None:
    options = tls_options(settings(cassandra_tls=True))
    assert options is not None
    assert options[0].cert_store_stats()["x509_ca"] > 0


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_an_unreadable_ca_file_fails_naming_the_setting(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CassandraTlsError, match=f"CASSANDRA_TLS_CA_FILE={path}"):
        tls_options(settings(cassandra_tls=True, cassandra_tls_ca_file=str(path)))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cassandra_tls_hostname_check": "server_name"}, "CASSANDRA_TLS_SERVER_NAME is not set"),
        ({"cassandra_tls_hostname_check": "chain_only"}, "chain_only needs the cluster's own CA"),
        ({"cassandra_tls_hostname_check": "none"}, "CASSANDRA_TLS_HOSTNAME_CHECK is invalid"),
        ({"cassandra_protocol_version": "6"}, "CASSANDRA_PROTOCOL_VERSION is invalid"),
        ({"cassandra_protocol_version": "2"}, "CASSANDRA_PROTOCOL_VERSION is invalid"),
    ],
)
def test_incomplete_tls_or_protocol_settings_fail_the_cold_start_naming_the_variable(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(cassandra_tls="true", **overrides)


def test_protocol_version_is_negotiated_unless_pinned() -> None:
    assert settings().cassandra_protocol_version is None
    assert settings(cassandra_protocol_version="").cassandra_protocol_version is None
    assert settings(cassandra_protocol_version="4").cassandra_protocol_version == 4
    assert cassandra_session.build_cluster(settings())._protocol_version_explicit is False
    pinned = cassandra_session.build_cluster(settings(cassandra_protocol_version="4"))
    assert (pinned.protocol_version, pinned._protocol_version_explicit) == (4, True)


def test_the_secrets_client_uses_short_timeouts_and_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The schema custom resource reads the secret during the deploy: a missing endpoint or rule
    # must fail in seconds, not use up the custom resource's time.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = cassandra_session._secrets_client(
        settings(cassandra_secret_connect_timeout_seconds="1.5", cassandra_secret_max_attempts="2")
    )
    config = client.meta.config
    assert config.connect_timeout == 1.5
    assert config.read_timeout == 5.0
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
