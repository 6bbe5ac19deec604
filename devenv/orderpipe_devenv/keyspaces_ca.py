"""Build the Amazon Keyspaces trust bundle (orderpipe_common/certs/keyspaces-ca.pem) without the internet.

The five roots are public certificates that package registries already carry: certifi has Amazon
Root CA 1-4; Debian's `ca-certificates` package (/etc/ssl/certs, apt) has those and Starfield Class 2,
which certifi dropped when Mozilla removed it from its root store. Each certificate is taken from
whichever store has it and checked against its published SHA-256 fingerprint
(`KEYSPACES_CA_FINGERPRINTS`), so a store cannot slip in another certificate.

    python -m orderpipe_devenv.keyspaces_ca            # rewrite the file
    python -m orderpipe_devenv.keyspaces_ca --check    # exit 1 if its certificates differ from the stores'
"""

from __future__ import annotations

import argparse
import hashlib
import re
import ssl
import sys
from pathlib import Path

from orderpipe_common.cassandra_backends import KEYSPACES_CA_FILE, KEYSPACES_CA_FINGERPRINTS

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.S)


class MissingCertificateError(RuntimeError):
    pass


def fingerprint(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def certificates(text: str) -> list[str]:
    return _PEM.findall(text)


def default_stores() -> dict[str, Path]:
    import certifi

    return {f"certifi {certifi.__version__}": Path(certifi.where()), "Debian ca-certificates": SYSTEM_BUNDLE}


def build(stores: dict[str, Path]) -> str:
    """The PEM text: each root in the order of KEYSPACES_CA_FINGERPRINTS, with its name as a comment."""
    found: dict[str, tuple[str, str]] = {}
    for label, store in stores.items():
        if not store.is_file():
            continue
        for pem in certificates(store.read_text(encoding="ascii", errors="replace")):
            found.setdefault(fingerprint(pem), (pem, label))
    blocks = []
    for name, digest in KEYSPACES_CA_FINGERPRINTS.items():
        if digest not in found:
            raise MissingCertificateError(
                f"{name} (SHA-256 {digest}) is in none of {', '.join(map(str, stores.values()))}: install "
                "certifi and Debian's ca-certificates, or download it from https://www.amazontrust.com/repository/"
            )
        pem, label = found[digest]
        blocks.append(f"# {name}\n# SHA-256 {digest} (from {label})\n{pem.strip()}\n")
    return "".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = build(default_stores())
    if args.check:
        shipped = certificates(KEYSPACES_CA_FILE.read_text()) if KEYSPACES_CA_FILE.is_file() else []
        same = shipped == certificates(text)
        print(f"{KEYSPACES_CA_FILE}: {'up to date' if same else 'differs from the certificate stores'}")
        return 0 if same else 1
    KEYSPACES_CA_FILE.parent.mkdir(parents=True, exist_ok=True)
    KEYSPACES_CA_FILE.write_text(text)
    print(f"wrote {KEYSPACES_CA_FILE} ({len(KEYSPACES_CA_FINGERPRINTS)} certificates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
