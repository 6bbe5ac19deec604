"""What each Cassandra backend accepts, stated once for the functions' settings, the session and the stack.

- `self-managed`: an Apache Cassandra cluster of our own (3.0+), reached through the VPC; the driver
  negotiates the protocol; any consistency level the cluster's replication allows.
- `keyspaces`: Amazon Keyspaces. TLS only, on port 9142, trusting the Amazon Root CAs 1-4 and the
  Starfield Class 2 root (AWS moves regions from the latter to the former; all are shipped, in
  `certs/keyspaces-ca.pem`); native protocol v3 or v4 (not v5); writes at LOCAL_QUORUM only, reads
  at ONE, LOCAL_ONE or LOCAL_QUORUM (any other level is refused by the service). Sources: the Keyspaces
  developer guide pages "Supported Apache Cassandra read and write consistency levels", "Using a
  Cassandra Python client driver" and "How to commit data models" (the certificate list).
- `astra`: DataStax Astra DB Serverless, through its secure connect bundle (mutual TLS, SNI proxy)
  and an application token. Writes at ONE, LOCAL_ONE or ANY are refused ("Database limits" page of
  the Astra DB Serverless docs); keyspaces are created outside CQL (CREATE KEYSPACE is not supported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

Backend = Literal["self-managed", "keyspaces", "astra"]
BACKENDS: tuple[str, ...] = get_args(Backend)
KeyspacesAuth = Literal["sigv4", "service_specific"]
KEYSPACES_AUTH: tuple[str, ...] = get_args(KeyspacesAuth)

SELF_MANAGED_PORT = 9042
KEYSPACES_PORT = 9142
KEYSPACES_PROTOCOL_VERSIONS = (3, 4)
# Pinned: negotiation would first try v5 and DSE versions, a failed attempt each at every cold start.
KEYSPACES_PROTOCOL_VERSION = 4
KEYSPACES_WRITE_CONSISTENCY = ("LOCAL_QUORUM",)
KEYSPACES_READ_CONSISTENCY = ("ONE", "LOCAL_ONE", "LOCAL_QUORUM")
KEYSPACES_REPLICATION = {"class": "SingleRegionStrategy"}
ASTRA_REFUSED_WRITE_CONSISTENCY = ("ONE", "LOCAL_ONE", "ANY")
# Astra DB speaks native protocol v4, not v5: negotiating from v5 ends on v4 after a protocol error
# (CassioML/cassio#164 pins v4 for Astra for that reason; docs/deploy.md, section 4b).
ASTRA_PROTOCOL_VERSIONS = (3, 4)
# Astra's secure connect bundle authenticates the application token as this user name.
ASTRA_TOKEN_USERNAME = "token"  # noqa: S105 (a fixed user name, not a secret)

# Shipped in every bundle (it is part of orderpipe_common); built by `python -m orderpipe_devenv.keyspaces_ca`.
KEYSPACES_CA_FILE = Path(__file__).resolve().parent / "certs" / "keyspaces-ca.pem"
# SHA-256 of each certificate's DER encoding, as published on https://www.amazontrust.com/repository/
# (and for Starfield by GoDaddy): the file must hold exactly these.
KEYSPACES_CA_FINGERPRINTS = {
    "Amazon Root CA 1": "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
    "Amazon Root CA 2": "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
    "Amazon Root CA 3": "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
    "Amazon Root CA 4": "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
    "Starfield Class 2 Certification Authority": "1465fa205397b876faa6f0a9958e5590e40fcc7faa4fb7c2c8677521fb5fb658",
}


def keyspaces_endpoint(region: str, url_suffix: str = "amazonaws.com") -> str:
    """The service endpoint of a region; with an interface VPC endpoint (private DNS) it resolves to it."""
    return f"cassandra.{region}.{url_suffix}"


def consistency_problems(backend: str, *, write: str, read: str) -> list[str]:
    """Why these consistency levels would be refused by the backend (empty when they are accepted)."""
    problems = []
    if backend == "keyspaces":
        if write not in KEYSPACES_WRITE_CONSISTENCY:
            problems.append(
                f"Amazon Keyspaces accepts writes at {', '.join(KEYSPACES_WRITE_CONSISTENCY)} only, not {write}"
            )
        if read not in KEYSPACES_READ_CONSISTENCY:
            problems.append(
                f"Amazon Keyspaces accepts reads at {', '.join(KEYSPACES_READ_CONSISTENCY)} only, not {read}"
            )
    elif backend == "astra" and write in ASTRA_REFUSED_WRITE_CONSISTENCY:
        problems.append(
            f"Astra DB refuses writes at {', '.join(ASTRA_REFUSED_WRITE_CONSISTENCY)}; got {write}"
        )
    return problems
