"""The cluster each backend gets: settings validation, and the driver's Cluster as built (not connected).

Logic only, no network. What these cannot show (that Amazon Keyspaces accepts the SigV4 signature,
presents a certificate for its endpoint's name, or answers on protocol v4) needs an AWS account; see
docs/deploy.md, "verified here / verified only on paper". The Keyspaces connection is opened against
a local stand-in (TLS on 9142, the endpoint's name, v4) in tests/integration/test_keyspaces_standin.py;
the Astra cluster is built against a local stand-in of its metadata service in
tests/integration/test_astra_bundle.py.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra_sigv4.auth import SigV4AuthProvider

from orderpipe_common import cassandra_session
from orderpipe_common.cassandra_backends import (
    KEYSPACES_CA_FILE,
    KEYSPACES_CA_FINGERPRINTS,
    consistency_problems,
    keyspaces_endpoint,
)
from orderpipe_common.cassandra_session import CassandraAuthenticationError, Credentials, build_cluster
from orderpipe_common.settings import CassandraSettings, SettingsError, load

KEYSPACES_HOST = keyspaces_endpoint("eu-west-1")
SELF_MANAGED = {"cassandra_contact_points": "10.0.0.1", "cassandra_local_dc": "dc1"}
KEYSPACES = {"cassandra_backend": "keyspaces", "cassandra_contact_points": KEYSPACES_HOST}
ASTRA = {
    "cassandra_backend": "astra",
    "cassandra_astra_bundle_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:astra-bundle-AbCdEf",
    "cassandra_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:astra-token-AbCdEf",
}


def settings(base: dict[str, str], **overrides: Any) -> CassandraSettings:
    return load(CassandraSettings, cassandra_keyspace="orderpipe", **{**base, **overrides})


@pytest.fixture
def role_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment Lambda gives a function: its role's temporary credentials and its region."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEROLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "role-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "role-session-token")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")


@pytest.fixture(autouse=True)
def keyspaces_endpoint_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver resolves contact points when the Cluster is built; this machine has no DNS for AWS."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("192.0.2.10" if host == KEYSPACES_HOST else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# -- settings ------------------------------------------------------------------------------------------
def test_self_managed_is_the_default_backend_with_its_port_and_a_negotiated_protocol() -> None:
    parsed = settings(SELF_MANAGED)
    assert (parsed.cassandra_backend, parsed.port, parsed.protocol_version) == ("self-managed", 9042, None)


def test_keyspaces_defaults_to_port_9142_protocol_v4_and_sigv4() -> None:
    parsed = settings(KEYSPACES)
    assert (parsed.port, parsed.protocol_version, parsed.cassandra_keyspaces_auth) == (9142, 4, "sigv4")
    # A pin to v3 is honoured (Keyspaces speaks v3 and v4).
    assert settings(KEYSPACES, cassandra_protocol_version="3").protocol_version == 3


@pytest.mark.parametrize(
    ("base", "overrides", "message"),
    [
        (SELF_MANAGED, {"cassandra_contact_points": ""}, "CASSANDRA_CONTACT_POINTS is not set"),
        (SELF_MANAGED, {"cassandra_local_dc": ""}, "CASSANDRA_LOCAL_DC is not set"),
        (SELF_MANAGED, {"cassandra_backend": "scylla"}, "CASSANDRA_BACKEND is invalid"),
        (SELF_MANAGED, {"cassandra_astra_bundle_file": "b.zip"}, "only used with CASSANDRA_BACKEND=astra"),
        (KEYSPACES, {"cassandra_port": "9042"}, "CASSANDRA_PORT must be 9142"),
        (KEYSPACES, {"cassandra_protocol_version": "5"}, "CASSANDRA_PROTOCOL_VERSION must be one of (3, 4)"),
        (KEYSPACES, {"cassandra_write_consistency": "ONE"}, "writes at LOCAL_QUORUM only, not ONE"),
        (KEYSPACES, {"cassandra_read_consistency": "QUORUM"}, "reads at ONE, LOCAL_ONE, LOCAL_QUORUM only"),
        (
            KEYSPACES,
            {"cassandra_secret_arn": "arn:x"},
            "CASSANDRA_KEYSPACES_AUTH=sigv4 the function's role signs",
        ),
        (
            KEYSPACES,
            {"cassandra_keyspaces_auth": "service_specific"},
            "needs the service-specific credentials",
        ),
        (ASTRA, {"cassandra_contact_points": "10.0.0.1"}, "the bundle names the hosts"),
        (ASTRA, {"cassandra_tls": "true"}, "the secure connect bundle carries TLS"),
        (ASTRA, {"cassandra_astra_bundle_secret_arn": ""}, "needs the secure connect bundle"),
        (ASTRA, {"cassandra_astra_bundle_file": "b.zip"}, "not both"),
        (ASTRA, {"cassandra_secret_arn": ""}, "needs the application token"),
        (ASTRA, {"cassandra_protocol_version": "5"}, "CASSANDRA_PROTOCOL_VERSION must be one of (3, 4)"),
        (
            ASTRA,
            {"cassandra_write_consistency": "LOCAL_ONE"},
            "Astra DB refuses writes at ONE, LOCAL_ONE, ANY",
        ),
    ],
)
def test_a_setting_the_backend_cannot_use_fails_the_cold_start_naming_it(
    base: dict[str, str], overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        settings(base, **overrides)


def test_each_backends_consistency_rules_are_stated_once() -> None:
    # The stack validates the tuning with the same function at synth (stacks/config.py).
    assert consistency_problems("keyspaces", write="LOCAL_QUORUM", read="LOCAL_ONE") == []
    assert consistency_problems("astra", write="LOCAL_QUORUM", read="ONE") == []
    assert consistency_problems("self-managed", write="ONE", read="ALL") == []


# -- the cluster each backend gets ----------------------------------------------------------------------
def test_self_managed_cluster_is_token_aware_in_the_local_dc_without_tls() -> None:
    cluster = build_cluster(settings(SELF_MANAGED), Credentials("app", "pw", "test"))
    assert (cluster.contact_points, cluster.port, cluster.ssl_context) == (["10.0.0.1"], 9042, None)
    assert isinstance(cluster.auth_provider, PlainTextAuthProvider)
    policy = cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT].load_balancing_policy
    assert isinstance(policy, TokenAwarePolicy)
    assert policy._child_policy.local_dc == "dc1"
    assert cluster._protocol_version_explicit is False


def test_keyspaces_cluster_signs_with_the_role_over_tls_to_the_endpoint_name(role_credentials: None) -> None:
    # Given the Keyspaces backend with its defaults (as the stack renders it),
    parsed = settings(KEYSPACES, cassandra_read_consistency="LOCAL_ONE")
    # when the cluster is built,
    cluster = build_cluster(parsed, cassandra_session._cached_credentials(parsed))
    # then it connects to the service endpoint on 9142, pinned to protocol v4,
    assert (cluster.contact_points, cluster.port) == ([KEYSPACES_HOST], 9142)
    assert (cluster.protocol_version, cluster._protocol_version_explicit) == (4, True)
    # over TLS that trusts exactly the five Keyspaces roots and checks every connection, peers
    # included, against the endpoint's name,
    context = cluster.ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    fingerprints = {hashlib.sha256(der).hexdigest() for der in context.get_ca_certs(binary_form=True)}
    assert fingerprints == set(KEYSPACES_CA_FINGERPRINTS.values())
    assert cluster.ssl_options == {"server_hostname": KEYSPACES_HOST}
    # signing with the role's credentials from the environment (SigV4),
    assert isinstance(cluster.auth_provider, SigV4AuthProvider)
    authenticator = cluster.auth_provider.new_authenticator(KEYSPACES_HOST)
    response = authenticator.evaluate_challenge(b"nonce=" + b"0" * 32)
    assert "access_key=ASIAEXAMPLEROLEKEY" in response and "session_token=role-session-token" in response
    # writing at LOCAL_QUORUM through a DC-aware (not token-aware) policy.
    profile = cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT]
    assert profile.consistency_level == ConsistencyLevel.LOCAL_QUORUM
    assert type(profile.load_balancing_policy) is DCAwareRoundRobinPolicy


def test_keyspaces_with_service_specific_credentials_uses_them_over_the_same_tls() -> None:
    parsed = settings(
        KEYSPACES,
        cassandra_keyspaces_auth="service_specific",
        cassandra_username="orderpipe-at-123456789012",
        cassandra_password="generated",
    )
    cluster = build_cluster(parsed, cassandra_session._cached_credentials(parsed))
    assert isinstance(cluster.auth_provider, PlainTextAuthProvider)
    assert cluster.auth_provider.username == "orderpipe-at-123456789012"
    assert cluster.ssl_options == {"server_hostname": KEYSPACES_HOST}


def test_keyspaces_without_a_region_fails_naming_aws_region(
    role_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(
        CassandraAuthenticationError, match=r"AWS_REGION \(or AWS_DEFAULT_REGION\) is not set"
    ):
        build_cluster(settings(KEYSPACES))


def test_keyspaces_can_trust_another_ca_file(role_credentials: None) -> None:
    ca = Path(__file__).resolve().parents[1] / "infrastructure" / "data" / "cluster-ca.pem"
    cluster = build_cluster(settings(KEYSPACES, cassandra_tls_ca_file=str(ca)), None)
    assert len(cluster.ssl_context.get_ca_certs()) == 1


def test_the_shipped_keyspaces_roots_are_the_published_ones() -> None:
    # The file is in orderpipe_common, so it ships in every bundle (tests/infrastructure/test_bundles.py).
    from orderpipe_devenv.keyspaces_ca import certificates, fingerprint

    shipped = [fingerprint(pem) for pem in certificates(KEYSPACES_CA_FILE.read_text())]
    assert shipped == list(KEYSPACES_CA_FINGERPRINTS.values())


def test_the_shipped_roots_match_the_package_registries_copies() -> None:
    # certifi (PyPI) carries Amazon Root CA 1-4; Debian's ca-certificates (apt) those and Starfield
    # Class 2. Where a store is present, its copy is byte-identical to the shipped one.
    from orderpipe_devenv.keyspaces_ca import certificates, default_stores, fingerprint

    shipped = {
        fingerprint(pem): ssl.PEM_cert_to_DER_cert(pem) for pem in certificates(KEYSPACES_CA_FILE.read_text())
    }
    compared = 0
    for store in default_stores().values():
        if not store.is_file():
            continue
        for pem in certificates(store.read_text(errors="replace")):
            if fingerprint(pem) in shipped:
                assert ssl.PEM_cert_to_DER_cert(pem) == shipped[fingerprint(pem)]
                compared += 1
    assert compared >= 4  # certifi alone has the four Amazon roots


def test_astra_token_is_read_from_the_secret_as_the_bare_token_or_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for text in ("AstraCS:abc:123", '{"token": "AstraCS:abc:123"}'):
        monkeypatch.setattr(cassandra_session, "read_secret_string", lambda _s, _arn, text=text: text)
        credentials = cassandra_session._read_credentials(settings(ASTRA))
        assert credentials is not None
        assert (credentials.username, credentials.password) == ("token", "AstraCS:abc:123")
