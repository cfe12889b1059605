"""The test PKI as files: what `iotcprov certs ...` does, usable from Python.

Every function reads and checks all its inputs first, builds every output in memory, and
only then writes them together (`iotcprov.outputs`): a bad input raises InputError naming
the option and writes nothing. CA keys are written encrypted when a passphrase is given;
device keys are not (a board cannot decrypt them) and every key file is created 0600.

Passphrases are passed as bytes or as a callable returning bytes, called only once all
other input has been checked (so the CLI prompts only when it is worth it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from iotcprov import validation
from iotcprov.credentials import pki
from iotcprov.errors import InputError
from iotcprov.outputs import OutputFile, check_outputs, write_outputs
from iotcprov.secret_input import CA_PASSPHRASE_ENV
from iotcprov.validation import validate_device_id

Passphrase = bytes | Callable[[], bytes] | None

DEFAULT_ROOT_NAME = "iotcprov Test Root CA"
DEFAULT_INTERMEDIATE_NAME = "iotcprov Test Intermediate CA"
MIN_PASSPHRASE = 8
PASSPHRASE_ENV = CA_PASSPHRASE_ENV

TEST_NOTICE = (
    "These are TEST certificates, for testing purposes only. In production the CA comes from your "
    "own PKI or a commercial CA with its key kept offline or in an HSM, device keys are generated "
    "on the device or in a secure element and never leave it, and certificates are issued from a "
    "signing request, with revocation and renewal planned."
)


@dataclass(frozen=True)
class Issued:
    """One certificate a command made, and the files that hold it and its key."""

    cert: x509.Certificate
    files: list[Path]

    @property
    def name(self) -> str:
        return pki.common_name(self.cert)


@dataclass(frozen=True)
class IssueResult:
    issued: list[Issued]
    written: list[OutputFile] = field(repr=False)
    key_encrypted: bool = False  # the new CA key file is encrypted

    @property
    def files(self) -> list[Path]:
        return [item.path for item in self.written]

    @property
    def secret_files(self) -> list[Path]:
        return [item.path for item in self.written if item.secret]


@dataclass(frozen=True)
class Issuer:
    """A CA loaded from files: its certificate, the certificates above it, and its key."""

    cert: x509.Certificate
    upper: list[x509.Certificate]  # the issuing CA's own issuers, nearest first
    key: pki.PrivateKey = field(repr=False)

    def chain_above_leaf(self) -> list[x509.Certificate]:
        """Issuing CA and its issuers up to, not including, a self-signed root."""
        return [cert for cert in [self.cert, *self.upper] if not pki.is_self_signed(cert)]


# ---------------------------------------------------------------- reading inputs


def _read(path: Path, field_name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{field_name}: {path} does not exist; give the path of an existing file") from None
    except IsADirectoryError:
        raise InputError(f"{field_name}: {path} is a folder; give a file") from None
    except OSError as error:
        raise InputError(f"{field_name}: cannot read {path}: {error.strerror}") from None


def _resolve(passphrase: Passphrase) -> bytes | None:
    return passphrase() if callable(passphrase) else passphrase


def load_certificate_file(path: Path, field_name: str = "FILE") -> list[x509.Certificate]:
    """Every certificate in a PEM (bundle) or DER file."""
    data = _read(path, field_name)
    if b"PRIVATE KEY-----" in data and b"-----BEGIN CERTIFICATE-----" not in data:
        raise InputError(
            f"{field_name}: {path} holds a private key, not a certificate; give the .pem certificate"
        )
    try:
        return pki.load_certificates(data)
    except pki.PkiError:
        raise InputError(f"{field_name}: {path} is not a PEM or DER certificate") from None


def load_key_file(path: Path, passphrase: Passphrase, field_name: str = "--ca-key") -> pki.PrivateKey:
    """A private key file; the passphrase is asked for only when the key turns out to be encrypted."""
    data = _read(path, field_name)
    secret: bytes | None = None
    while True:
        try:
            return pki.load_private_key(data, secret)
        except pki.PassphraseNeeded:
            secret = _resolve(passphrase)
            if not secret:
                raise InputError(
                    f"{field_name}: {path} is encrypted; set {PASSPHRASE_ENV} or enter the passphrase"
                ) from None
        except pki.PkiError as error:
            if secret:
                raise InputError(
                    f"{field_name}: wrong passphrase for {path} (or the file is damaged); "
                    f"check {PASSPHRASE_ENV} or retype it"
                ) from None
            raise InputError(f"{field_name}: {path}: {error}; give the CA's private key file") from None


def load_issuer(ca_cert: Path, ca_key: Path, ca_passphrase: Passphrase) -> Issuer:
    """The CA named by --ca-cert / --ca-key, checked: a CA, in order, owning the key."""
    certs = load_certificate_file(ca_cert, "--ca-cert")
    first = certs[0]
    if not pki.is_ca(first):
        raise InputError(
            f"--ca-cert: {ca_cert} (CN={pki.common_name(first)}) is not a CA certificate; "
            "give the root or intermediate certificate (root.pem, intermediate.pem)"
        )
    for lower, upper in zip(certs, certs[1:], strict=False):
        if lower.issuer != upper.subject:
            raise InputError(
                f"--ca-cert: the certificates in {ca_cert} are out of order; put the issuing CA "
                "first, then each certificate's issuer"
            )
    key = load_key_file(ca_key, ca_passphrase, "--ca-key")
    if not pki.key_matches_cert(key, first):
        raise InputError(
            f"--ca-key: {ca_key} does not belong to --ca-cert {ca_cert} (CN={pki.common_name(first)}); "
            "give the key made together with that certificate"
        )
    return Issuer(first, certs[1:], key)


def read_device_ids(path: Path) -> list[str]:
    """Device IDs from a file (one per line, or CSV with a device_id column): the shared rule."""
    return validation.read_device_ids(path, "--device-ids")


def _check_device_ids(device_ids: Sequence[str], field_name: str) -> list[str]:
    if not device_ids:
        raise InputError(f"{field_name}: no device ID given; give --device-id ID or --device-ids FILE")
    for device_id in device_ids:
        validate_device_id(device_id, field_name)
        if len(device_id) > pki.CN_MAX:
            raise InputError(
                f"{field_name}: {device_id!r} has {len(device_id)} characters; an X.509 device ID is the "
                f"certificate's CN, which holds at most {pki.CN_MAX}: use a shorter ID"
            )
    if len(set(device_ids)) != len(device_ids):
        raise InputError(f"{field_name}: a device ID is given twice; give each once")
    return list(device_ids)


def _check_common(key_type: str, days: int | None) -> None:
    if key_type not in pki.KEY_TYPES:
        raise InputError(f"--key-type: {key_type!r} is not supported; use one of {', '.join(pki.KEY_TYPES)}")
    if days is not None and days <= 0:
        raise InputError(f"--days: {days} is not a positive number of days")


def _check_name(name: str, field_name: str = "--name") -> None:
    if not name.strip():
        raise InputError(f"{field_name}: empty; give a common name")
    if len(name) > pki.CN_MAX:
        raise InputError(
            f"{field_name}: {len(name)} characters; a certificate's CN holds at most {pki.CN_MAX}"
        )


def check_new_passphrase(passphrase: bytes | None) -> bytes | None:
    """A passphrase for a new CA key: None (unencrypted) or at least MIN_PASSPHRASE bytes."""
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
        raise InputError(
            f"CA passphrase ({PASSPHRASE_ENV} or prompt): {len(passphrase)} characters; "
            f"use at least {MIN_PASSPHRASE}"
        )
    return passphrase


def _issue(make: Callable[..., x509.Certificate], *args: object, **kwargs: object) -> x509.Certificate:
    """Call a pki maker; its PkiError (an expired CA, a CA at pathlen 0) is about --ca-cert."""
    try:
        return make(*args, **kwargs)
    except pki.PkiError as error:
        raise InputError(f"--ca-cert: {error}") from None


# ---------------------------------------------------------------- commands


def create_root(
    out_dir: Path,
    *,
    name: str = DEFAULT_ROOT_NAME,
    key_type: str = "ec",
    days: int | None = None,
    key_passphrase: Passphrase = None,
    force: bool = False,
) -> IssueResult:
    """`certs root`: OUT/root.pem and OUT/root.key.pem (encrypted when a passphrase is given)."""
    out_dir = Path(out_dir)
    _check_common(key_type, days)
    _check_name(name)
    cert_path, key_path = out_dir / "root.pem", out_dir / "root.key.pem"
    _precheck([cert_path, key_path], force)
    secret = check_new_passphrase(_resolve(key_passphrase))
    key = pki.generate_key(key_type)
    cert = pki.make_root_ca(name, key, days=days or pki.ROOT_DAYS)
    outputs = [
        OutputFile(cert_path, pki.cert_to_pem(cert)),
        OutputFile(key_path, pki.key_to_pem(key, secret), secret=True),
    ]
    write_outputs(outputs, force=force)
    return IssueResult([Issued(cert, [cert_path, key_path])], outputs, key_encrypted=secret is not None)


def create_intermediate(
    out_dir: Path,
    *,
    ca_cert: Path,
    ca_key: Path,
    ca_passphrase: Passphrase = None,
    name: str = DEFAULT_INTERMEDIATE_NAME,
    key_type: str = "ec",
    days: int | None = None,
    key_passphrase: Passphrase = None,
    force: bool = False,
) -> IssueResult:
    """`certs intermediate`: OUT/intermediate.pem, OUT/intermediate.key.pem, OUT/chain.pem.

    chain.pem is the new certificate followed by its issuers up to, not including, the root.
    """
    out_dir = Path(out_dir)
    _check_common(key_type, days)
    _check_name(name)
    paths = [out_dir / "intermediate.pem", out_dir / "intermediate.key.pem", out_dir / "chain.pem"]
    _precheck(paths, force)
    issuer = load_issuer(ca_cert, ca_key, ca_passphrase)
    secret = check_new_passphrase(_resolve(key_passphrase))
    key = pki.generate_key(key_type)
    cert = _issue(
        pki.make_intermediate_ca, name, key, issuer.cert, issuer.key, days=days or pki.INTERMEDIATE_DAYS
    )
    outputs = [
        OutputFile(paths[0], pki.cert_to_pem(cert)),
        OutputFile(paths[1], pki.key_to_pem(key, secret), secret=True),
        OutputFile(paths[2], pki.certs_to_pem([cert, *issuer.chain_above_leaf()])),
    ]
    write_outputs(outputs, force=force)
    return IssueResult([Issued(cert, paths)], outputs, key_encrypted=secret is not None)


def create_verification(
    out_file: Path,
    *,
    ca_cert: Path,
    ca_key: Path,
    code: str,
    ca_passphrase: Passphrase = None,
    force: bool = False,
) -> IssueResult:
    """`certs verification`: a PEM certificate with CN = CODE signed by the CA key (proof of possession)."""
    out_file = Path(out_file)
    code = code.strip()
    if not code or not code.isascii() or not code.isprintable() or " " in code:
        raise InputError("--code: give the verification code exactly as IoT Central shows it (no spaces)")
    _check_name(code, "--code")
    _precheck([out_file], force)
    issuer = load_issuer(ca_cert, ca_key, ca_passphrase)
    cert = _issue(pki.make_verification_cert, code, issuer.cert, issuer.key)
    outputs = [OutputFile(out_file, pki.cert_to_pem(cert))]
    write_outputs(outputs, force=force)
    return IssueResult([Issued(cert, [out_file])], outputs)


def device_file_names(out_dir: Path, device_id: str) -> list[Path]:
    """ID.pem, ID.key.pem, ID.chain.pem, ID.der, ID.key.der."""
    return [
        out_dir / f"{device_id}{suffix}" for suffix in (".pem", ".key.pem", ".chain.pem", ".der", ".key.der")
    ]


def _device_outputs(
    out_dir: Path, key: pki.PrivateKey, cert: x509.Certificate, chain: Sequence[x509.Certificate]
) -> list[OutputFile]:
    pem, key_pem, chain_pem, der, key_der = device_file_names(out_dir, pki.common_name(cert))
    return [
        OutputFile(pem, pki.cert_to_pem(cert)),
        OutputFile(key_pem, pki.key_to_pem(key), secret=True),
        OutputFile(chain_pem, pki.certs_to_pem([cert, *chain])),
        OutputFile(der, pki.cert_to_der(cert)),
        OutputFile(key_der, pki.key_to_traditional_der(key), secret=True),
    ]


def create_device_certs(
    out_dir: Path,
    *,
    ca_cert: Path,
    ca_key: Path,
    device_ids: Sequence[str],
    ca_passphrase: Passphrase = None,
    key_type: str = "ec",
    days: int | None = None,
    force: bool = False,
) -> IssueResult:
    """`certs device`: per device ID, a leaf (CN = ID) under the CA and the five device files.

    ID.chain.pem is the leaf followed by the intermediates (no root): what a device sends.
    """
    out_dir = Path(out_dir)
    _check_common(key_type, days)
    ids = _check_device_ids(device_ids, "--device-id")
    _precheck([path for device_id in ids for path in device_file_names(out_dir, device_id)], force)
    issuer = load_issuer(ca_cert, ca_key, ca_passphrase)
    chain = issuer.chain_above_leaf()
    issued: list[Issued] = []
    outputs: list[OutputFile] = []
    for device_id in ids:
        key = pki.generate_key(key_type)
        cert = _issue(
            pki.make_device_cert, device_id, key, issuer.cert, issuer.key, days=days or pki.LEAF_DAYS
        )
        files = _device_outputs(out_dir, key, cert, chain)
        outputs += files
        issued.append(Issued(cert, [item.path for item in files]))
    write_outputs(outputs, force=force)
    return IssueResult(issued, outputs)


def create_self_signed(
    out_dir: Path,
    *,
    device_ids: Sequence[str],
    key_type: str = "ec",
    days: int | None = None,
    force: bool = False,
) -> IssueResult:
    """`certs self-signed`: per device ID, a self-signed certificate (subject = issuer CN = ID)."""
    out_dir = Path(out_dir)
    _check_common(key_type, days)
    ids = _check_device_ids(device_ids, "--device-id")
    _precheck([path for device_id in ids for path in device_file_names(out_dir, device_id)], force)
    issued: list[Issued] = []
    outputs: list[OutputFile] = []
    for device_id in ids:
        key = pki.generate_key(key_type)
        cert = pki.make_self_signed_device_cert(device_id, key, days=days or pki.LEAF_DAYS)
        files = _device_outputs(out_dir, key, cert, [])
        outputs += files
        issued.append(Issued(cert, [item.path for item in files]))
    write_outputs(outputs, force=force)
    return IssueResult(issued, outputs)


def show(path: Path) -> list[pki.CertificateInfo]:
    """`certs show`: a description of every certificate in a PEM or DER file."""
    return [pki.describe(cert) for cert in load_certificate_file(path, "FILE")]


def _precheck(paths: Sequence[Path], force: bool) -> None:
    """Refuse existing outputs before any slow or interactive step (write_outputs checks again)."""
    check_outputs([OutputFile(path, b"") for path in paths], force=force)
