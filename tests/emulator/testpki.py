"""Test certificates for the emulator tests (root, intermediate, device leaves, proofs).

Stop-gap until `iotcprov.credentials.pki` lands on main; the names follow its planned API.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _build(cn, key, issuer_cert, issuer_key, ca: bool, days: int = 30, start_days_ago: int = 1):
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=start_days_ago))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def make_root_ca(cn: str, key):
    return _build(cn, key, None, None, ca=True, days=365)


def make_intermediate_ca(cn: str, key, issuer_cert, issuer_key):
    return _build(cn, key, issuer_cert, issuer_key, ca=True, days=365)


def make_verification_cert(code: str, issuer_cert, issuer_key):
    return _build(code, generate_key(), issuer_cert, issuer_key, ca=False)


def make_device_cert(device_id: str, key, issuer_cert, issuer_key, days: int = 30, start_days_ago: int = 1):
    return _build(device_id, key, issuer_cert, issuer_key, ca=False, days=days, start_days_ago=start_days_ago)


def make_self_signed_device_cert(device_id: str, key):
    return _build(device_id, key, None, None, ca=False)


def pem(cert) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_identity(folder: Path, name: str, chain: list, key) -> tuple[str, str]:
    """cert (leaf first, then the chain) and key files for an SDK or TLS client."""
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_text("".join(pem(c) for c in chain))
    key_file.write_bytes(key_pem(key))
    return str(cert_file), str(key_file)
