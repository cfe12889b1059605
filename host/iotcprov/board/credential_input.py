"""Turning what the user gave (a group key, a device key, or certificate and key files) into the
per-device credential a board receives. The group key is used here and goes no further."""

import os
from pathlib import Path

from iotcprov.board.identity import SasCredential, X509Credential
from iotcprov.credentials import pki
from iotcprov.credentials.sas import derive_device_key
from iotcprov.errors import InputError
from iotcprov.validation import validate_device_id, validate_key

KEY_PASSPHRASE_ENV = "IOTCPROV_KEY_PASSPHRASE"


def sas_from_group_key(group_key: str, device_id: str) -> SasCredential:
    validate_key(group_key, field="--group-key")
    validate_device_id(device_id)
    return SasCredential(derive_device_key(group_key, device_id))


def sas_from_device_key(device_key: str) -> SasCredential:
    validate_key(device_key, field="--device-key")
    return SasCredential(device_key.strip())


def _read(path: str | Path, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"{field}: cannot read {str(path)!r}: {error.strerror or error}") from None


def x509_from_files(
    cert_path: str | Path,
    key_path: str | Path,
    chain_path: str | Path | None = None,
    passphrase: str | None = None,
    *,
    as_pem: bool | None = None,
) -> X509Credential:
    """Leaf (+ chain) and private key from PEM or DER files; the key must match the leaf.

    as_pem None: PEM on the board when there is a chain to send, DER otherwise (the unix-port
    virtual board reads DER only)."""
    try:
        certs = pki.load_certificates(_read(cert_path, "--cert"))
    except pki.PkiError as error:
        raise InputError(f"--cert: {str(cert_path)!r}: {error}") from None
    chain = certs[1:]
    if chain_path is not None:
        try:
            chain += pki.load_certificates(_read(chain_path, "--chain"))
        except pki.PkiError as error:
            raise InputError(f"--chain: {str(chain_path)!r}: {error}") from None
    if passphrase is None:
        passphrase = os.environ.get(KEY_PASSPHRASE_ENV)
    try:
        key = pki.load_private_key(_read(key_path, "--key"), passphrase.encode() if passphrase else None)
    except pki.PkiError as error:
        hint = f" (set {KEY_PASSPHRASE_ENV})" if "passphrase" in str(error) else ""
        raise InputError(f"--key: {str(key_path)!r}: {error}{hint}") from None
    leaf = certs[0]
    if not pki.key_matches_cert(key, leaf):
        raise InputError(
            f"--key: {str(key_path)!r} is not the private key of the certificate in {str(cert_path)!r}; "
            "give the key that was issued with that certificate"
        )
    return X509Credential(
        cert_der=pki.cert_to_der(leaf),
        key_der=pki.key_to_der(key),
        chain_der=tuple(pki.cert_to_der(c) for c in chain),
        as_pem=bool(chain) if as_pem is None else as_pem,
    )
