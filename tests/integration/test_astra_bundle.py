"""The Astra secure connect bundle, from its secret to the driver's cluster, against a local stand-in.

A real bundle is a zip holding config.json (the metadata service's host and port), the CA that
signed Astra's certificates, and a client certificate and key (mutual TLS). The driver reads it
when the Cluster is built and asks the metadata service, over mutual TLS, for the SNI proxy and the
hosts. Here the bundle is made in the test (a throw-away CA, a server and a client certificate), the
metadata service is a small HTTPS server on loopback that refuses clients without the bundle's
certificate, and the secret lives in moto server, as the stack's astraBundleSecretArn would.

What this cannot show: that Astra's real proxy and token are accepted (no Astra database here; see
docs/deploy.md, "verified here / verified only on paper").
"""

from __future__ import annotations

import datetime
import io
import json
import ssl
import stat
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orderpipe_common import cassandra_session
from orderpipe_common.cassandra_session import CassandraConfigurationError, build_cluster
from orderpipe_common.settings import CassandraSettings, load
from tests.fixtures.aws import MotoServer

HOST_ID = str(uuid.uuid4())
TOKEN = "AstraCS:local:0123456789abcdef"


@dataclass(frozen=True)
class Pki:
    ca: bytes
    server: tuple[bytes, bytes]  # certificate, key (PEM)
    client: tuple[bytes, bytes]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0] if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def make_pki() -> Pki:
    ca_key = _key()
    ca = _certificate("orderpipe test astra ca", ca_key, None, ca=True)
    signer = (ca.subject, ca_key)
    pems = []
    for subject, ip in (("metadata", "127.0.0.1"), ("client", None)):
        key = _key()
        pems.append(
            (
                _certificate(subject, key, signer, ip=ip).public_bytes(serialization.Encoding.PEM),
                _pem_key(key),
            )
        )
    return Pki(ca=ca.public_bytes(serialization.Encoding.PEM), server=pems[0], client=pems[1])


@dataclass
class MetadataService:
    """Astra's metadata service as the driver uses it: GET /metadata over mutual TLS."""

    port: int
    clients: list[str] = field(default_factory=list)  # the client certificates' common names


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def metadata_service(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetadataService]:
    folder = tmp_path_factory.mktemp("astra-metadata")
    for name, content in (("ca.pem", pki.ca), ("server.pem", pki.server[0]), ("server.key", pki.server[1])):
        (folder / name).write_bytes(content)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    context.load_verify_locations(folder / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED  # no bundle certificate, no answer

    service: MetadataService

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer = self.connection.getpeercert()
            service.clients.append(dict(item[0] for item in peer["subject"])["commonName"])
            body = json.dumps(
                {
                    "version": 1,
                    "region": "local",
                    "contact_info": {
                        "type": "sni_proxy",
                        "local_dc": "astra-local",
                        "contact_points": [HOST_ID],
                        "sni_proxy_address": "127.0.0.1:29042",
                    },
                }
            ).encode()
            status = 200 if self.path == "/metadata" else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    service = MetadataService(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


def bundle_zip(pki: Pki, port: int, *, client: tuple[bytes, bytes] | None = None) -> bytes:
    """A secure connect bundle laid out as Astra's: config.json, ca.crt, cert, key."""
    cert, key = client or pki.client
    config = {"host": "127.0.0.1", "port": port, "keyspace": "orderpipe", "localDC": "astra-local"}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as bundle:
        bundle.writestr("config.json", json.dumps(config))
        bundle.writestr("ca.crt", pki.ca)
        bundle.writestr("cert", cert)
        bundle.writestr("key", key)
    return out.getvalue()


def astra_secrets(moto: MotoServer, bundle: bytes) -> tuple[str, str]:
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=moto.endpoint_url, region_name=moto.region)
    suffix = uuid.uuid4().hex[:6]
    bundle_arn = client.create_secret(Name=f"orderpipe/astra-bundle-{suffix}", SecretBinary=bundle)["ARN"]
    token_arn = client.create_secret(Name=f"orderpipe/astra-token-{suffix}", SecretString=TOKEN)["ARN"]
    return str(bundle_arn), str(token_arn)


def astra_settings(**values: str) -> CassandraSettings:
    return load(CassandraSettings, cassandra_backend="astra", cassandra_keyspace="orderpipe", **values)


@pytest.fixture(autouse=True)
def _fresh_process() -> Iterator[None]:
    cassandra_session.forget_bundle()
    cassandra_session.forget_credentials()
    yield
    cassandra_session.forget_bundle()
    cassandra_session.forget_credentials()


def sni_targets(cluster: Cluster) -> list[tuple[str, int, str]]:
    """Where the driver will connect: (proxy address, port, TLS server name) per host of the service."""
    return [(p.address, p.port, p.ssl_options["server_hostname"]) for p in cluster.contact_points]


def test_the_bundle_from_its_secret_reaches_the_metadata_service_with_its_client_certificate(
    moto_server: MotoServer, metadata_service: MetadataService, pki: Pki
) -> None:
    # Given the bundle and the token in Secrets Manager, as the stack names them,
    bundle_arn, token_arn = astra_secrets(moto_server, bundle_zip(pki, metadata_service.port))
    settings = astra_settings(cassandra_astra_bundle_secret_arn=bundle_arn, cassandra_secret_arn=token_arn)
    # when a function builds its cluster (what a cold start does before connecting),
    cluster = build_cluster(settings, cassandra_session._cached_credentials(settings))
    try:
        # then the bundle was written to the temporary directory, readable by the function only,
        path = Path(cassandra_session.astra_bundle_path(settings))
        assert path.parent == Path(tempfile.gettempdir())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # the driver asked the metadata service over mutual TLS with the bundle's client certificate,
        assert metadata_service.clients[-1:] == ["client"]
        # took the hosts and the SNI proxy from it (no contact points of ours),
        assert sni_targets(cluster) == [("127.0.0.1", 29042, HOST_ID)]
        # trusting the bundle's CA only, with its client certificate (the driver's TLS, none of ours),
        ca = x509.load_pem_x509_certificate(pki.ca).public_bytes(serialization.Encoding.DER)
        assert cluster.ssl_context.get_ca_certs(binary_form=True) == [ca]
        assert cluster.ssl_context.verify_mode == ssl.CERT_REQUIRED
        # and logs in with the token from the secret as the user "token".
        assert isinstance(cluster.auth_provider, PlainTextAuthProvider)
        assert (cluster.auth_provider.username, cluster.auth_provider.password) == ("token", TOKEN)
    finally:
        cluster.shutdown()


def test_the_bundle_is_written_once_per_process(
    moto_server: MotoServer, metadata_service: MetadataService, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle_arn, token_arn = astra_secrets(moto_server, bundle_zip(pki, metadata_service.port))
    settings = astra_settings(cassandra_astra_bundle_secret_arn=bundle_arn, cassandra_secret_arn=token_arn)
    first = cassandra_session.astra_bundle_path(settings)
    # A second cluster in the same process (a reconnect) reads no secret again.
    monkeypatch.setattr(
        cassandra_session, "_read_secret", lambda *_: pytest.fail("the secret was read twice")
    )
    assert cassandra_session.astra_bundle_path(settings) == first


def test_the_driver_unpacks_the_bundle_in_the_temporary_directory_not_next_to_it(
    metadata_service: MetadataService, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bundle file in the function's code directory (read-only on Lambda: /var/task),
    folder = tmp_path / "task"
    folder.mkdir()
    bundle = folder / "secure-connect-orderpipe.zip"
    bundle.write_bytes(bundle_zip(pki, metadata_service.port))
    unpacked_in: list[str | None] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        unpacked_in.append(kwargs.get("dir"))
        return real_mkdtemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    # when the cluster is built,
    cluster = build_cluster(
        astra_settings(cassandra_astra_bundle_file=str(bundle), cassandra_password=TOKEN), None
    )
    cluster.shutdown()
    # then the driver unpacked it in the temporary directory (use_default_tempdir), never beside the
    # bundle (this machine runs as root, so a read-only directory would not show the difference).
    assert unpacked_in == [tempfile.gettempdir()]
    assert sni_targets(cluster) == [("127.0.0.1", 29042, HOST_ID)]


def test_a_secret_that_is_not_a_bundle_fails_naming_the_setting(moto_server: MotoServer) -> None:
    bundle_arn, token_arn = astra_secrets(moto_server, b"not a zip")
    settings = astra_settings(cassandra_astra_bundle_secret_arn=bundle_arn, cassandra_secret_arn=token_arn)
    with pytest.raises(
        CassandraConfigurationError, match=r"CASSANDRA_ASTRA_BUNDLE_SECRET_ARN=.*secure connect bundle zip"
    ):
        build_cluster(settings, None)


def test_a_bundle_whose_client_certificate_the_service_does_not_trust_is_refused(
    moto_server: MotoServer, metadata_service: MetadataService, pki: Pki
) -> None:
    # Given a bundle whose client certificate another CA signed (a bundle of another database),
    stranger = make_pki().client
    bundle_arn, token_arn = astra_secrets(
        moto_server, bundle_zip(pki, metadata_service.port, client=stranger)
    )
    settings = astra_settings(cassandra_astra_bundle_secret_arn=bundle_arn, cassandra_secret_arn=token_arn)
    seen = len(metadata_service.clients)
    # then the metadata service never answers it, and the cluster is not built.
    with pytest.raises(Exception, match="metadata service"):
        build_cluster(settings, None)
    assert len(metadata_service.clients) == seen
