"""X.509 test PKI in memory: keys, CA / leaf / server certificates, encodings, chain checks.

No file I/O and no clock beyond "now" (every maker takes `now=` for tests). The profiles are
the ones IoT Central, DPS and mbedTLS (MicroPython on ESP32) accept:

- keys: EC P-256 by default, RSA-2048 / RSA-4096 on request; signatures SHA-256;
- CA: basicConstraints CA:TRUE critical (pathlen 0 on an intermediate), keyUsage
  keyCertSign + cRLSign critical, SKI, plus AKI when issued by another CA;
- leaf (device, verification): CA:FALSE, keyUsage digitalSignature critical, EKU clientAuth,
  SKI + AKI, subject CN = device ID (or the verification code);
- server (emulator TLS): like a leaf with EKU serverAuth and subjectAltName DNS / IP entries;
- random positive serials of at most 20 bytes; notBefore a few minutes in the past for clock
  skew; a certificate never outlives its issuer (notAfter is clamped to the issuer's).

Errors about bad data raise `PkiError` (a ValueError) with a message that never holds a key
or passphrase; the file-level service turns them into InputError naming the option.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa2048", "rsa4096"]
KEY_TYPES: tuple[str, ...] = ("ec", "rsa2048", "rsa4096")
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

ROOT_DAYS = 5 * 365
INTERMEDIATE_DAYS = 3 * 365
VERIFICATION_DAYS = 30  # IoT Central checks it once, right after upload
LEAF_DAYS = 365
SERVER_DAYS = 365
CN_MAX = 64  # RFC 5280 ub-common-name; IoT Central device IDs for X.509 must fit in it
BACKDATE = _dt.timedelta(minutes=5)  # tolerate boards and hosts whose clocks run a little behind

_PEM_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"


class PkiError(ValueError):
    """Data that is not a usable certificate, key or chain. The message holds no secret."""


# ---------------------------------------------------------------- keys


def generate_key(key_type: str = "ec") -> PrivateKey:
    """A new private key: "ec" (P-256), "rsa2048" or "rsa4096"."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa4096":
        return rsa.generate_private_key(public_exponent=65537, key_size=4096)
    raise PkiError(f"key type {key_type!r} is not supported; use one of {', '.join(KEY_TYPES)}")


def key_type_name(key: object) -> str:
    """A short description of a private or public key: "EC P-256", "RSA 2048", ..."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}.get(
            key.curve.name, f"EC {key.curve.name}"
        )
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


# ---------------------------------------------------------------- certificate makers


def _now(now: _dt.datetime | None) -> _dt.datetime:
    return now if now is not None else _dt.datetime.now(_dt.UTC)


def _check_days(days: int) -> None:
    if days <= 0:
        raise PkiError(f"validity of {days} days is not positive")


def _cn_name(common_name: str) -> x509.Name:
    if not common_name:
        raise PkiError("common name is empty")
    if len(common_name) > CN_MAX:
        raise PkiError(f"common name has {len(common_name)} characters; X.509 allows at most {CN_MAX}")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: object,
    days: int,
    now: _dt.datetime | None,
    issuer_cert: x509.Certificate | None,
) -> x509.CertificateBuilder:
    _check_days(days)
    start = _now(now) - BACKDATE
    end = start + BACKDATE + _dt.timedelta(days=days)
    if issuer_cert is not None:
        end = min(end, issuer_cert.not_valid_after_utc)
        if end <= start:
            raise PkiError(f"issuer certificate {_cn(issuer_cert)!r} has expired")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())  # 159 random bits: positive, <= 20 bytes
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _with_aki(builder: x509.CertificateBuilder, issuer_cert: x509.Certificate) -> x509.CertificateBuilder:
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())
    return builder.add_extension(aki, critical=False)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _check_issuer(issuer_cert: x509.Certificate, issuer_key: PrivateKey) -> None:
    if not is_ca(issuer_cert):
        raise PkiError(f"issuer certificate {_cn(issuer_cert)!r} is not a CA certificate")
    if not key_matches_cert(issuer_key, issuer_cert):
        raise PkiError(f"issuer key does not belong to issuer certificate {_cn(issuer_cert)!r}")


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    return builder.sign(key, hashes.SHA256())


def make_root_ca(
    common_name: str, key: PrivateKey, *, days: int = ROOT_DAYS, now: _dt.datetime | None = None
) -> x509.Certificate:
    """A self-signed root CA certificate for `key`."""
    name = _cn_name(common_name)
    builder = (
        _builder(name, name, key.public_key(), days, now, None)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(), critical=True)
    )
    return _sign(builder, key)


def make_intermediate_ca(
    common_name: str,
    key: PrivateKey,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    *,
    days: int = INTERMEDIATE_DAYS,
    path_length: int | None = 0,
    now: _dt.datetime | None = None,
) -> x509.Certificate:
    """An intermediate CA for `key`, signed by the issuer (pathlen 0: it issues leaves only)."""
    _check_issuer(issuer_cert, issuer_key)
    issuer_path_length = _basic_constraints(issuer_cert).path_length
    if issuer_path_length is not None and issuer_path_length < 1:
        raise PkiError(
            f"issuer certificate {_cn(issuer_cert)!r} has pathlen {issuer_path_length}: "
            "it may issue device certificates but no further CA"
        )
    builder = _builder(_cn_name(common_name), issuer_cert.subject, key.public_key(), days, now, issuer_cert)
    builder = (
        _with_aki(builder, issuer_cert)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_usage(), critical=True)
    )
    return _sign(builder, issuer_key)


def _leaf(
    subject_cn: str,
    public_key: object,
    issuer_name: x509.Name,
    issuer_cert: x509.Certificate | None,
    days: int,
    now: _dt.datetime | None,
    eku: x509.ObjectIdentifier,
) -> x509.CertificateBuilder:
    builder = _builder(_cn_name(subject_cn), issuer_name, public_key, days, now, issuer_cert)
    if issuer_cert is not None:
        builder = _with_aki(builder, issuer_cert)
    else:  # self-signed: the AKI names the certificate's own key
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    )


def make_device_cert(
    device_id: str,
    key: PrivateKey,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    *,
    days: int = LEAF_DAYS,
    now: _dt.datetime | None = None,
) -> x509.Certificate:
    """A device leaf (subject CN = device ID, clientAuth) for an X.509 enrollment group."""
    _check_issuer(issuer_cert, issuer_key)
    builder = _leaf(
        device_id, key.public_key(), issuer_cert.subject, issuer_cert, days, now,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )  # fmt: skip
    return _sign(builder, issuer_key)


def make_self_signed_device_cert(
    device_id: str, key: PrivateKey, *, days: int = LEAF_DAYS, now: _dt.datetime | None = None
) -> x509.Certificate:
    """A self-signed device certificate (subject = issuer CN = device ID) for an individual enrollment."""
    name = _cn_name(device_id)
    builder = _leaf(device_id, key.public_key(), name, None, days, now, ExtendedKeyUsageOID.CLIENT_AUTH)
    return _sign(builder, key)


def make_verification_cert(
    code: str,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    *,
    key: PrivateKey | None = None,
    days: int = VERIFICATION_DAYS,
    now: _dt.datetime | None = None,
) -> x509.Certificate:
    """IoT Central's proof of possession: subject CN = the verification code, signed by the CA key.

    The certificate's own key is irrelevant to the check; a fresh EC key is used when none is given.
    """
    _check_issuer(issuer_cert, issuer_key)
    public_key = (key or generate_key("ec")).public_key()
    builder = _leaf(
        code, public_key, issuer_cert.subject, issuer_cert, days, now,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )  # fmt: skip
    return _sign(builder, issuer_key)


def make_server_cert(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    key: PrivateKey,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    common_name: str | None = None,
    days: int = SERVER_DAYS,
    now: _dt.datetime | None = None,
) -> x509.Certificate:
    """A TLS server certificate (serverAuth) with subjectAltName DNS and IP entries.

    CN defaults to the first DNS name (or IP); clients check the SAN, the CN only informs.
    """
    _check_issuer(issuer_cert, issuer_key)
    try:
        ips = [ipaddress.ip_address(address) for address in ip_addresses]
    except ValueError as error:
        raise PkiError(f"not an IP address: {error}") from None
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ip) for ip in ips]
    if not sans:
        raise PkiError("a server certificate needs at least one DNS name or IP address")
    cn = common_name or (list(dns_names) + [str(ip) for ip in ips])[0]
    builder = _leaf(
        cn, key.public_key(), issuer_cert.subject, issuer_cert, days, now,
        ExtendedKeyUsageOID.SERVER_AUTH,
    )  # fmt: skip
    builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _sign(builder, issuer_key)


# ---------------------------------------------------------------- inspection


def thumbprint_sha1(cert: x509.Certificate) -> str:
    """SHA-1 thumbprint, upper-case hex without separators, as IoT Central shows it."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - a thumbprint, not a signature


def thumbprint_sha256(cert: x509.Certificate) -> str:
    """SHA-256 thumbprint, upper-case hex without separators."""
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def common_name(cert: x509.Certificate) -> str:
    """The subject's first CN, or "" when it has none."""
    return _cn(cert)


def _cn(cert: x509.Certificate) -> str:  # for functions whose `common_name` parameter hides the above
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def issuer_common_name(cert: x509.Certificate) -> str:
    values = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return x509.BasicConstraints(ca=False, path_length=None)


def is_ca(cert: x509.Certificate) -> bool:
    """True when basicConstraints says CA:TRUE."""
    return _basic_constraints(cert).ca


def is_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies its signature."""
    return cert.subject == cert.issuer and issued_by(cert, cert)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer` signed `cert` (names match and the signature verifies)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches_cert(key: PrivateKey, cert: x509.Certificate) -> bool:
    """True when `key` is the private half of the certificate's public key."""
    try:
        return _spki(key.public_key()) == _spki(cert.public_key())
    except (AttributeError, ValueError, UnsupportedAlgorithm):
        return False


@dataclass(frozen=True)
class CertificateInfo:
    """What `certs show` prints. Times are ISO 8601 UTC."""

    subject: str
    issuer: str
    common_name: str
    serial: str
    not_before: str
    not_after: str
    key_type: str
    signature_hash: str
    thumbprint_sha1: str
    thumbprint_sha256: str
    is_ca: bool
    self_signed: bool

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def describe(cert: x509.Certificate) -> CertificateInfo:
    hash_algorithm = cert.signature_hash_algorithm
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=common_name(cert),
        serial=format(cert.serial_number, "X"),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        key_type=key_type_name(cert.public_key()),
        signature_hash=hash_algorithm.name if hash_algorithm else "none",
        thumbprint_sha1=thumbprint_sha1(cert),
        thumbprint_sha256=thumbprint_sha256(cert),
        is_ca=is_ca(cert),
        self_signed=is_self_signed(cert),
    )


# ---------------------------------------------------------------- encodings


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_to_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def certs_to_pem(certs: Iterable[x509.Certificate]) -> bytes:
    """Concatenated PEM certificates, in the order given (leaf first for a chain)."""
    return b"".join(cert_to_pem(cert) for cert in certs)


def key_to_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM; encrypted with the passphrase when one is given (never for a board)."""
    if passphrase is not None and not passphrase:
        raise PkiError("the passphrase is empty")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def key_to_der(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 DER: what mbedTLS (MicroPython `load_cert_chain`) reads for EC and RSA."""
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def key_to_traditional_der(key: PrivateKey) -> bytes:
    """The algorithm's own unencrypted DER, SEC1 for EC and PKCS#1 for RSA: what a board loads
    when it gets DER. MicroPython v1.23's load_cert_chain hands mbedTLS one byte more than the
    key; mbedTLS 3's PKCS#8 DER parser refuses it, the SEC1 parser ignores it."""
    traditional = serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.DER, traditional, serialization.NoEncryption())


def load_certificate(data: bytes) -> x509.Certificate:
    """One certificate from PEM (the first in the text) or DER bytes."""
    try:
        if _PEM_CERT_BEGIN in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise PkiError("not a PEM or DER X.509 certificate") from None


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (in order), or the single certificate of a DER file."""
    try:
        if _PEM_CERT_BEGIN in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise PkiError("not a PEM or DER X.509 certificate") from None


def is_encrypted_key(data: bytes) -> bool:
    """True for an encrypted PEM private key (PKCS#8 or legacy OpenSSL "Proc-Type: 4,ENCRYPTED")."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


class PassphraseNeeded(PkiError):
    """The private key is encrypted and no passphrase was given."""


def _parse_private_key(data: bytes, password: bytes | None) -> object:
    if b"-----BEGIN" in data:
        return serialization.load_pem_private_key(data, password=password)
    return serialization.load_der_private_key(data, password=password)


def load_private_key(data: bytes, passphrase: bytes | None = None) -> PrivateKey:
    """An EC or RSA private key from PEM or DER, decrypting with the passphrase when it is encrypted.

    A passphrase given for an unencrypted key is ignored.
    """
    password = passphrase or None
    try:
        try:
            key = _parse_private_key(data, password)
        except TypeError:  # a password for a plain key, or none for an encrypted one
            if password is None:
                raise PassphraseNeeded("the private key is encrypted and no passphrase was given") from None
            password = None
            key = _parse_private_key(data, None)
    except (ValueError, UnsupportedAlgorithm) as error:
        if isinstance(error, PkiError):
            raise
        if password:
            raise PkiError("wrong passphrase, or the private key is damaged") from None
        raise PkiError("not a PEM or DER private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"{type(key).__name__} keys are not supported; use EC P-256 or RSA")
    return key


# ---------------------------------------------------------------- chain verification


class ChainError(PkiError):
    """A certificate chain that does not lead to the trust anchor."""


def _check_time(cert: x509.Certificate, at: _dt.datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise ChainError(f"certificate {_cn(cert)!r} is not valid before {cert.not_valid_before_utc}")
    if at > cert.not_valid_after_utc:
        raise ChainError(f"certificate {_cn(cert)!r} expired on {cert.not_valid_after_utc}")


def _check_can_issue(issuer: x509.Certificate, cas_below: int) -> None:
    """`issuer` signs a certificate with `cas_below` CA certificates under it (leaf not counted)."""
    constraints = _basic_constraints(issuer)
    if not constraints.ca:
        raise ChainError(f"certificate {_cn(issuer)!r} signs others but is not a CA")
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise ChainError(f"certificate {_cn(issuer)!r} allows pathlen {constraints.path_length}")
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise ChainError(f"certificate {_cn(issuer)!r} lacks keyUsage keyCertSign")


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    root: x509.Certificate,
    *,
    at: _dt.datetime | None = None,
) -> list[x509.Certificate]:
    """Check that `leaf` chains to the trust anchor `root` through some of `intermediates`.

    `root` is the trusted certificate: a self-signed root, or an intermediate an enrollment
    group trusts directly. Checks signatures, issuer names, validity times, CA:TRUE, pathlen
    and keyCertSign on every issuer. A self-signed leaf passes against itself. Returns the
    path leaf..root; raises ChainError otherwise.
    """
    when = _now(at)
    if leaf == root:
        _check_time(leaf, when)
        if not is_self_signed(leaf):
            raise ChainError(f"certificate {_cn(leaf)!r} is its own anchor but not self-signed")
        return [leaf]
    path = [leaf]
    pool = [cert for cert in intermediates if cert != leaf and cert != root]
    current = leaf
    while True:
        _check_time(current, when)
        cas_below = len(path) - 1
        if issued_by(current, root):
            _check_can_issue(root, cas_below)
            _check_time(root, when)
            return [*path, root]
        issuer = next((cert for cert in pool if issued_by(current, cert)), None)
        if issuer is None:
            raise ChainError(
                f"certificate {_cn(current)!r} (issuer {issuer_common_name(current)!r}) "
                f"does not chain to {_cn(root)!r}"
            )
        _check_can_issue(issuer, cas_below)
        pool.remove(issuer)
        path.append(issuer)
        current = issuer
