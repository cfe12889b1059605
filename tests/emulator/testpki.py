"""Test certificates for the emulator tests, from the project's X.509 toolkit, plus file helpers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from iotcprov.credentials import pki
from iotcprov.credentials.pki import (  # noqa: F401 - re-exported for the tests
    generate_key,
    make_intermediate_ca,
    make_root_ca,
    make_self_signed_device_cert,
    make_verification_cert,
)


def make_device_cert(device_id: str, key, issuer_cert, issuer_key, days: int = 30, start_days_ago: int = 0):
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=start_days_ago)
    return pki.make_device_cert(device_id, key, issuer_cert, issuer_key, days=days, now=now)


def pem(cert) -> str:
    return pki.cert_to_pem(cert).decode()


def write_identity(folder: Path, name: str, chain: list, key) -> tuple[str, str]:
    """cert (leaf first, then the chain) and key files for an SDK or TLS client."""
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_text("".join(pem(c) for c in chain))
    key_file.write_bytes(pki.key_to_pem(key))
    return str(cert_file), str(key_file)
