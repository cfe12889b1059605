"""Trust roots for a board, always as DER (one certificate per file on the board).

`azure`: the two roots Azure IoT Hub and DPS chain to, taken from certifi's bundle by subject
name. A file: every certificate in it (PEM bundle or one DER), e.g. the local emulator's CA.
"""

import warnings
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from iotcprov.errors import InputError
from iotcprov.validation import shown

AZURE_ROOT_NAMES = ("DigiCert Global Root G2", "Microsoft RSA Root Certificate Authority 2017")


def _common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def azure_roots(bundle: bytes | None = None) -> tuple[bytes, ...]:
    """DER of Azure's roots, in AZURE_ROOT_NAMES order, from certifi (or `bundle`, a PEM bundle)."""
    if bundle is None:
        bundle = Path(certifi.where()).read_bytes()
    found = {}
    with warnings.catch_warnings():  # a few unrelated roots in the bundle have odd serial numbers
        warnings.simplefilter("ignore")
        certs = x509.load_pem_x509_certificates(bundle)
    for cert in certs:
        name = _common_name(cert)
        if name in AZURE_ROOT_NAMES and name not in found:
            found[name] = cert.public_bytes(serialization.Encoding.DER)
    missing = [name for name in AZURE_ROOT_NAMES if name not in found]
    if missing:
        raise InputError(
            f"--trust azure: certifi's bundle lacks {', '.join(missing)}; "
            "upgrade certifi or give --trust FILE"
        )
    return tuple(found[name] for name in AZURE_ROOT_NAMES)


def roots_from_file(path: str | Path) -> tuple[bytes, ...]:
    """DER of every certificate in a PEM or DER file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"--trust: cannot read {shown(str(path))}: {error.strerror or error}") from None
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise InputError(
            f"--trust: {str(path)!r} holds no PEM or DER certificate; give a CA certificate file"
        ) from None
    return tuple(cert.public_bytes(serialization.Encoding.DER) for cert in certs)


def resolve_trust(choice: str) -> tuple[bytes, ...]:
    """`azure` or a certificate file path -> DER roots."""
    return azure_roots() if choice == "azure" else roots_from_file(choice)
