"""The in-memory PKI core: certificate profiles, encodings, chain checks, and OpenSSL's verdict."""

import datetime as dt
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from iotcprov.credentials import pki

NOW = dt.datetime(2030, 1, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca():
    """root -> intermediate, EC keys, issued at NOW."""
    root_key = pki.generate_key()
    root = pki.make_root_ca("Test Root", root_key, now=NOW)
    inter_key = pki.generate_key()
    inter = pki.make_intermediate_ca("Test Intermediate", inter_key, root, root_key, now=NOW)
    return root, root_key, inter, inter_key


def forge(issuer, issuer_key, cn, key, ca=False):
    """Hand-build a certificate pki refuses to make (under a leaf, or a CA below pathlen 0)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


def test_root_profile(ca):
    root, root_key, _, _ = ca
    constraints = ext(root, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    usage = ext(root, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = ext(root, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    assert root.subject == root.issuer and pki.is_self_signed(root)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    assert pki.key_type_name(root.public_key()) == "EC P-256"
    # test CAs live for years; notBefore is backdated for clock skew
    assert root.not_valid_after_utc - NOW >= dt.timedelta(days=2 * 365)
    assert root.not_valid_before_utc == NOW - pki.BACKDATE


def test_intermediate_profile(ca):
    root, _, inter, _ = ca
    constraints = ext(inter, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ext(inter, x509.KeyUsage).value.key_cert_sign
    aki = ext(inter, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(root, x509.SubjectKeyIdentifier).value.digest
    assert inter.issuer == root.subject
    # never outlives its issuer
    assert inter.not_valid_after_utc <= root.not_valid_after_utc


def test_device_leaf_profile(ca):
    _, _, inter, inter_key = ca
    key = pki.generate_key()
    leaf = pki.make_device_cert("dev-1", key, inter, inter_key, now=NOW)
    assert pki.common_name(leaf) == "dev-1"
    assert not pki.is_ca(leaf)
    assert ext(leaf, x509.BasicConstraints).value.ca is False
    usage = ext(leaf, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == (
        ext(inter, x509.SubjectKeyIdentifier).value.digest
    )
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=365) + pki.BACKDATE
    assert pki.key_matches_cert(key, leaf) and not pki.key_matches_cert(inter_key, leaf)


def test_serials_are_random_positive_and_at_most_20_bytes(ca):
    _, _, inter, inter_key = ca
    key = pki.generate_key()
    serials = {pki.make_device_cert("dev-1", key, inter, inter_key).serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(0 < serial < 2**159 for serial in serials)  # 20 DER bytes including the sign bit


def test_leaf_days_and_clamping_to_the_issuer(ca):
    _, _, inter, inter_key = ca
    key = pki.generate_key()
    short = pki.make_device_cert("dev-1", key, inter, inter_key, days=7, now=NOW)
    assert short.not_valid_after_utc == NOW + dt.timedelta(days=7)
    long = pki.make_device_cert("dev-1", key, inter, inter_key, days=100 * 365, now=NOW)
    assert long.not_valid_after_utc == inter.not_valid_after_utc
    with pytest.raises(pki.PkiError, match="not positive"):
        pki.make_device_cert("dev-1", key, inter, inter_key, days=0)
    later = inter.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(pki.PkiError, match="expired"):
        pki.make_device_cert("dev-1", key, inter, inter_key, now=later)


def test_issuer_must_be_a_ca_and_own_the_key(ca):
    root, root_key, inter, inter_key = ca
    key = pki.generate_key()
    leaf = pki.make_device_cert("dev-1", key, inter, inter_key)
    with pytest.raises(pki.PkiError, match="not a CA"):
        pki.make_device_cert("dev-2", pki.generate_key(), leaf, key)
    with pytest.raises(pki.PkiError, match="does not belong"):
        pki.make_device_cert("dev-2", pki.generate_key(), inter, root_key)


def test_self_signed_and_verification_certs(ca):
    root, root_key, _, _ = ca
    key = pki.generate_key()
    own = pki.make_self_signed_device_cert("dev-9", key, now=NOW)
    assert pki.common_name(own) == "dev-9" and pki.issuer_common_name(own) == "dev-9"
    assert pki.is_self_signed(own) and not pki.is_ca(own)
    assert pki.verify_chain(own, [], own, at=NOW) == [own]

    check = pki.make_verification_cert("5F3A9C01B2", root, root_key, now=NOW)
    assert pki.common_name(check) == "5F3A9C01B2" and check.issuer == root.subject
    assert not pki.is_ca(check)
    assert pki.verify_chain(check, [], root, at=NOW) == [check, root]


def test_server_cert_has_sans_and_server_auth(ca):
    root, root_key, _, _ = ca
    cert = pki.make_server_cert(
        root, root_key, pki.generate_key(), dns_names=["localhost"], ip_addresses=["127.0.0.1", "::1"]
    )
    sans = ext(cert, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"),
    ]  # fmt: skip
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert pki.common_name(cert) == "localhost"
    with pytest.raises(pki.PkiError, match="IP address"):
        pki.make_server_cert(root, root_key, pki.generate_key(), ip_addresses=["localhost"])
    with pytest.raises(pki.PkiError, match="at least one"):
        pki.make_server_cert(root, root_key, pki.generate_key())


def test_thumbprints_are_upper_case_hex_of_the_der(ca):
    root = ca[0]
    import hashlib

    der = pki.cert_to_der(root)
    assert pki.thumbprint_sha1(root) == hashlib.sha1(der).hexdigest().upper()
    assert pki.thumbprint_sha256(root) == hashlib.sha256(der).hexdigest().upper()
    info = pki.describe(root)
    assert info.is_ca and info.self_signed and info.thumbprint_sha256 == pki.thumbprint_sha256(root)
    assert info.serial == format(root.serial_number, "X") and info.key_type == "EC P-256"


def test_certificate_encodings_round_trip(ca):
    root, _, inter, _ = ca
    assert pki.load_certificate(pki.cert_to_pem(root)) == root
    assert pki.load_certificate(pki.cert_to_der(root)) == root
    assert pki.load_certificates(pki.certs_to_pem([inter, root])) == [inter, root]
    assert pki.load_certificates(pki.cert_to_der(inter)) == [inter]
    for junk in (b"", b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        with pytest.raises(pki.PkiError, match="not a PEM or DER"):
            pki.load_certificate(junk)


@pytest.mark.parametrize("key_type", ["ec", "rsa2048"])
def test_key_encodings_round_trip(key_type):
    key = pki.generate_key(key_type)
    public = key.public_key()
    for data in (pki.key_to_pem(key), pki.key_to_der(key)):
        assert pki.load_private_key(data).public_key() == public
    encrypted = pki.key_to_pem(key, b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in encrypted and pki.is_encrypted_key(encrypted)
    assert pki.load_private_key(encrypted, b"correct horse").public_key() == public
    with pytest.raises(pki.PkiError, match="wrong passphrase") as caught:
        pki.load_private_key(encrypted, b"battery staple")
    assert "battery" not in str(caught.value)
    with pytest.raises(pki.PkiError, match="no passphrase"):
        pki.load_private_key(encrypted)
    with pytest.raises(pki.PkiError, match="not a PEM or DER private key"):
        pki.load_private_key(b"garbage")
    # a passphrase offered for a plain key does no harm
    assert pki.load_private_key(pki.key_to_der(key), b"unused").public_key() == public
    # encrypted PKCS#8 in DER, as other tools may write it
    encrypted_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    )  # fmt: skip
    assert pki.load_private_key(encrypted_der, b"correct horse").public_key() == public
    with pytest.raises(pki.PkiError, match="no passphrase"):
        pki.load_private_key(encrypted_der)
    with pytest.raises(pki.PkiError, match="wrong passphrase"):
        pki.load_private_key(encrypted_der, b"battery staple")


def test_common_names_longer_than_64_are_refused(ca):
    _, _, inter, inter_key = ca
    pki.make_device_cert("d" * 64, pki.generate_key(), inter, inter_key)
    with pytest.raises(pki.PkiError, match="65 characters.*at most 64"):
        pki.make_device_cert("d" * 65, pki.generate_key(), inter, inter_key)


def test_unknown_key_type():
    with pytest.raises(pki.PkiError, match="rsa2048"):
        pki.generate_key("dsa")


def test_verify_chain_accepts_the_path_and_refuses_the_rest(ca):
    root, root_key, inter, inter_key = ca
    leaf = pki.make_device_cert("dev-1", pki.generate_key(), inter, inter_key, now=NOW)
    assert pki.verify_chain(leaf, [inter], root, at=NOW) == [leaf, inter, root]
    # the intermediate itself may be the anchor an enrollment group trusts
    assert pki.verify_chain(leaf, [], inter, at=NOW) == [leaf, inter]
    with pytest.raises(pki.ChainError, match="does not chain"):
        pki.verify_chain(leaf, [], root, at=NOW)
    other_root = pki.make_root_ca("Other Root", pki.generate_key(), now=NOW)
    with pytest.raises(pki.ChainError, match="does not chain"):
        pki.verify_chain(leaf, [inter], other_root, at=NOW)
    with pytest.raises(pki.ChainError, match="expired"):
        pki.verify_chain(leaf, [inter], root, at=NOW + dt.timedelta(days=400))
    with pytest.raises(pki.ChainError, match="not valid before"):
        pki.verify_chain(leaf, [inter], root, at=NOW - dt.timedelta(days=1))
    # pathlen 0: an intermediate may not sign another CA (pki refuses to make one; forge it)
    sub_key = pki.generate_key()
    with pytest.raises(pki.PkiError, match="pathlen 0"):
        pki.make_intermediate_ca("Sub", sub_key, inter, inter_key, now=NOW)
    sub = forge(inter, inter_key, "Sub", sub_key, ca=True)
    deep = pki.make_device_cert("dev-2", pki.generate_key(), sub, sub_key, now=NOW)
    with pytest.raises(pki.ChainError, match="pathlen"):
        pki.verify_chain(deep, [sub, inter], root, at=NOW)
    # a self-signed leaf is trusted only as itself
    own = pki.make_self_signed_device_cert("dev-3", pki.generate_key(), now=NOW)
    with pytest.raises(pki.ChainError):
        pki.verify_chain(own, [], root, at=NOW)


def test_verify_chain_refuses_a_non_ca_issuer(ca):
    _, _, inter, inter_key = ca
    leaf_key = pki.generate_key()
    leaf = pki.make_device_cert("dev-1", leaf_key, inter, inter_key, now=NOW)
    forged = forge(leaf, leaf_key, "dev-2", pki.generate_key())
    with pytest.raises(pki.ChainError, match="not a CA"):
        pki.verify_chain(forged, [leaf], inter, at=NOW)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_verifies_root_intermediate_leaf_verification_and_self_signed(tmp_path: Path):
    root_key = pki.generate_key()
    root = pki.make_root_ca("Test Root", root_key)
    inter_key = pki.generate_key()
    inter = pki.make_intermediate_ca("Test Intermediate", inter_key, root, root_key)
    files = {
        "root.pem": pki.cert_to_pem(root),
        "chain.pem": pki.cert_to_pem(inter),
        "direct.pem": pki.cert_to_pem(pki.make_device_cert("dev-1", pki.generate_key(), root, root_key)),
        "leaf.pem": pki.cert_to_pem(pki.make_device_cert("dev-2", pki.generate_key(), inter, inter_key)),
        "check.pem": pki.cert_to_pem(pki.make_verification_cert("ABCDEF", inter, inter_key)),
        "own.pem": pki.cert_to_pem(pki.make_self_signed_device_cert("dev-3", pki.generate_key())),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    def verify(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["openssl", "verify", "-purpose", "sslclient", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )

    assert verify("-CAfile", "root.pem", "direct.pem").returncode == 0
    assert verify("-CAfile", "root.pem", "-untrusted", "chain.pem", "leaf.pem").returncode == 0
    assert verify("-CAfile", "root.pem", "-untrusted", "chain.pem", "check.pem").returncode == 0
    assert verify("-CAfile", "own.pem", "own.pem").returncode == 0
    # and OpenSSL agrees on a broken path
    assert verify("-CAfile", "root.pem", "leaf.pem").returncode != 0
