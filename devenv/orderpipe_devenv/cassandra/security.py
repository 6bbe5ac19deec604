"""TLS and password authentication for local nodes, as a real secured cluster has them.

`make_tls_material` makes, with the JDK's `keytool`, a throw-away CA and one node certificate signed
by it, carrying a DNS name (`SERVER_NAME`) and the IP address of every local node as subject
alternative names, so each of the functions' host-name policies (server_name, ip_san, chain_only)
can be used against the same nodes. The node keystore is PKCS12; clients get the CA as PEM.

`password_setup` creates the application role the functions log in as, the way an operator would:
a login role with CREATE on all keyspaces (it then owns the keyspace it creates), not a superuser.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cassandra.cluster import Session

from orderpipe_devenv.cassandra.errors import CassandraError
from orderpipe_devenv.processes import find_java

SERVER_NAME = "cassandra.orderpipe.test"
# The superuser every fresh node with PasswordAuthenticator creates (cassandra/cassandra).
SUPERUSER = ("cassandra", "cassandra")
APPLICATION_ROLE = "orderpipe"


class TlsMaterialError(CassandraError):
    """keytool could not make the certificates."""


@dataclass(frozen=True)
class TlsMaterial:
    ca_pem: Path  # what clients trust
    keystore: Path  # the nodes' key and certificate chain (PKCS12)
    keystore_password: str
    server_name: str


def _keytool() -> str:
    """The JDK's keytool, beside the `java` the nodes run with."""
    return str(Path(find_java()).resolve().with_name("keytool"))


def make_tls_material(
    directory: Path, *, addresses: Sequence[str], server_name: str = SERVER_NAME, days: int = 2
) -> TlsMaterial:
    """A CA and a node certificate for `addresses` (IP SANs) and `server_name` (DNS SAN), in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    keytool = _keytool()
    password = secrets.token_hex(12)
    ca_store, node_store = directory / "ca.p12", directory / "node.p12"
    ca_pem, request, signed = directory / "ca.pem", directory / "node.csr", directory / "node.pem"
    common = ["-storetype", "PKCS12", "-storepass", password, "-keypass", password]
    sans = ",".join([f"dns:{server_name}", *(f"ip:{address}" for address in addresses)])
    steps = [
        ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048", "-validity", str(days),
         "-dname", "CN=orderpipe local test CA", "-ext", "bc:c", "-keystore", str(ca_store), *common],
        ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), "-storepass", password,
         "-file", str(ca_pem)],
        ["-genkeypair", "-alias", "node", "-keyalg", "RSA", "-keysize", "2048", "-validity", str(days),
         "-dname", f"CN={server_name}", "-keystore", str(node_store), *common],
        ["-certreq", "-alias", "node", "-keystore", str(node_store), "-storepass", password,
         "-file", str(request)],
        ["-gencert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), "-storepass", password,
         "-infile", str(request), "-outfile", str(signed), "-validity", str(days),
         "-ext", f"san={sans}", "-ext", "eku=serverAuth"],
        # The chain first (the CA), then the signed certificate replaces the self-signed one.
        ["-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem), "-keystore", str(node_store),
         "-storepass", password],
        ["-importcert", "-alias", "node", "-file", str(signed), "-keystore", str(node_store),
         "-storepass", password],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run([keytool, *step], capture_output=True, text=True, check=False, timeout=60)
        if result.returncode != 0:
            raise TlsMaterialError(f"keytool {step[0]} failed: {result.stdout}{result.stderr}")
    return TlsMaterial(
        ca_pem=ca_pem, keystore=node_store, keystore_password=password, server_name=server_name
    )


def password_setup(session: Session, *, role: str = APPLICATION_ROLE, password: str) -> None:
    """Create the application's login role on a fresh node; `session` is a superuser's driver session.

    (Cassandra 5.0 refuses a second password change of a role within 5 s: a fresh node's role is
    created once, with its password, and not altered here.)
    """
    # The role is a name of our own (not a value); the password is a bound value.
    session.execute(
        f"CREATE ROLE {role} WITH LOGIN = true AND SUPERUSER = false AND PASSWORD = %s", (password,)
    )
    session.execute(f"GRANT CREATE ON ALL KEYSPACES TO {role}")


def alter_password(
    session: Session, password: str, *, role: str = APPLICATION_ROLE, timeout_seconds: float = 15.0
) -> None:
    """ALTER ROLE as an operator would (`session`: a superuser's); Cassandra 5.0 refuses a change
    within 5 s of the last one, so a refusal for that reason is retried until `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            session.execute(f"ALTER ROLE {role} WITH PASSWORD = %s", (password,))
            return
        except Exception as error:
            if "can only be changed every" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
