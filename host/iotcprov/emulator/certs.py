"""The emulator's certificate files and the certificate checks its authentication needs.

Certificates are made by the project's X.509 toolkit (`iotcprov.credentials.pki`); this module
only decides where they live: a server CA kept in the data folder (key file 0600) and a fresh
server certificate per run whose SANs cover every configured name and address.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from iotcprov.credentials import pki
from iotcprov.outputs import OutputFile, write_outputs

CA_CERT_FILE = "server-ca.pem"
CA_KEY_FILE = "server-ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"
CA_COMMON_NAME = "iotcprov emulator root CA"


def _write_pair(cert_path: Path, cert: x509.Certificate, key_path: Path, key: pki.PrivateKey) -> None:
    """A certificate and its key (created 0600, binary on Windows too), each by temp + rename."""
    write_outputs(
        [
            OutputFile(key_path, pki.key_to_pem(key), secret=True),
            OutputFile(cert_path, pki.cert_to_pem(cert)),
        ],
        force=True,
        field="--data",
    )


def ensure_server_ca(data_dir: Path) -> tuple[x509.Certificate, pki.PrivateKey]:
    """Load the data folder's server CA, creating it on first use."""
    cert_path, key_path = data_dir / CA_CERT_FILE, data_dir / CA_KEY_FILE
    if cert_path.exists() and key_path.exists():
        return pki.load_certificate(cert_path.read_bytes()), pki.load_private_key(key_path.read_bytes())
    key = pki.generate_key("ec")
    cert = pki.make_root_ca(CA_COMMON_NAME, key)
    _write_pair(cert_path, cert, key_path, key)
    return cert, key


def write_server_cert(data_dir: Path, dns_names: list[str], ip_addresses: list[str]) -> tuple[Path, Path]:
    """A fresh server certificate for this run, signed by the data folder's CA, with these SANs."""
    ca_cert, ca_key = ensure_server_ca(data_dir)
    key = pki.generate_key("ec")
    cert = pki.make_server_cert(
        ca_cert,
        ca_key,
        key,
        dns_names=list(dict.fromkeys(dns_names)),
        ip_addresses=list(dict.fromkeys(ip_addresses)),
    )
    cert_path, key_path = data_dir / SERVER_CERT_FILE, data_dir / SERVER_KEY_FILE
    _write_pair(cert_path, cert, key_path, key)
    return cert_path, key_path


def validity_problem(cert: x509.Certificate, now: float) -> str | None:
    """None when `now` lies within the certificate's validity dates, else why not."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    if moment < cert.not_valid_before_utc:
        return "certificate is not yet valid"
    if moment > cert.not_valid_after_utc:
        return "certificate expired"
    return None
