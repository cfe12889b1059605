"""`iotcprov certs ...` end to end: files, modes, encryption, OpenSSL's verdict, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from iotcprov import cli
from iotcprov.credentials import pki, pki_files
from iotcprov.errors import InputError

PASS = "test-passphrase-1"
ENV = pki_files.PASSPHRASE_ENV
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
posix_modes = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
DEVICE_SUFFIXES = (".pem", ".key.pem", ".chain.pem", ".der", ".key.der")


def certs(*args: object) -> int:
    return cli.main(["certs", *[str(arg) for arg in args]])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden temporaries included) with its content."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def openssl(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv(ENV, PASS)


@pytest.fixture
def pki_dir(tmp_path: Path, env) -> Path:
    """root/, inter/ (intermediate under the root) made by the CLI."""
    assert certs("root", "--out", tmp_path / "root") == 0
    root_ca = ["--ca-cert", tmp_path / "root/root.pem", "--ca-key", tmp_path / "root/root.key.pem"]
    assert certs("intermediate", *root_ca, "--out", tmp_path / "inter") == 0
    return tmp_path


# ---------------------------------------------------------------- what is written


@posix_modes
@pytest.mark.smoke
def test_root_files_modes_and_encrypted_key(tmp_path: Path, env, capsys):
    assert certs("root", "--out", tmp_path / "ca", "--name", "My Test Root") == 0
    out = capsys.readouterr().out
    cert = pki.load_certificate((tmp_path / "ca/root.pem").read_bytes())
    assert pki.common_name(cert) == "My Test Root" and pki.is_ca(cert) and pki.is_self_signed(cert)
    key_file = tmp_path / "ca/root.key.pem"
    assert mode(key_file) == 0o600
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in key_file.read_bytes()
    key = pki.load_private_key(key_file.read_bytes(), PASS.encode())
    assert pki.key_matches_cert(key, cert)
    assert sorted(snapshot(tmp_path)) == ["ca/root.key.pem", "ca/root.pem"]
    assert "TEST certificates" in out and "production" in out
    assert pki.thumbprint_sha256(cert) in out
    assert PASS not in out


def test_no_encrypt_writes_a_plain_key_and_warns(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv(ENV, raising=False)
    assert certs("root", "--out", tmp_path, "--no-encrypt") == 0
    err = capsys.readouterr().err
    assert "warning" in err and "NOT encrypted" in err
    assert b"BEGIN PRIVATE KEY" in (tmp_path / "root.key.pem").read_bytes()


@needs_openssl
def test_openssl_reads_the_encrypted_ca_key_with_the_passphrase(pki_dir: Path):
    assert (
        openssl(
            "pkey", "-in", "root/root.key.pem", "-passin", f"pass:{PASS}", "-noout", cwd=pki_dir
        ).returncode
        == 0
    )
    assert openssl(
        "pkey", "-in", "root/root.key.pem", "-passin", "pass:wrong-one", "-noout", cwd=pki_dir
    ).returncode


@needs_openssl
@posix_modes
@pytest.mark.smoke
def test_device_under_intermediate_verifies_with_openssl(pki_dir: Path):
    ca = ["--ca-cert", pki_dir / "inter/chain.pem", "--ca-key", pki_dir / "inter/intermediate.key.pem"]
    assert certs("device", *ca, "--device-id", "dev-1", "--out", pki_dir / "devices") == 0
    devices = pki_dir / "devices"
    assert sorted(path.name for path in devices.iterdir()) == sorted(f"dev-1{s}" for s in DEVICE_SUFFIXES)
    assert mode(devices / "dev-1.key.pem") == 0o600 and mode(devices / "dev-1.key.der") == 0o600
    leaf = pki.load_certificate((devices / "dev-1.pem").read_bytes())
    assert pki.common_name(leaf) == "dev-1" and not pki.is_ca(leaf)
    assert pki.load_certificate((devices / "dev-1.der").read_bytes()) == leaf
    key = pki.load_private_key((devices / "dev-1.key.der").read_bytes())  # unencrypted for the board
    assert pki.key_matches_cert(key, leaf)
    chain = pki.load_certificates((devices / "dev-1.chain.pem").read_bytes())
    intermediate = pki.load_certificate((pki_dir / "inter/intermediate.pem").read_bytes())
    assert chain == [leaf, intermediate]  # leaf + intermediates, no root
    assert pki.load_certificates((pki_dir / "inter/chain.pem").read_bytes()) == [intermediate]

    verify = ["verify", "-purpose", "sslclient", "-CAfile", "root/root.pem"]
    ok = openssl(*verify, "-untrusted", "devices/dev-1.chain.pem", "devices/dev-1.pem", cwd=pki_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert openssl(*verify, "devices/dev-1.pem", cwd=pki_dir).returncode != 0  # the intermediate is needed


@needs_openssl
def test_device_directly_under_root_and_verification_cert_verify(pki_dir: Path):
    ca = ["--ca-cert", pki_dir / "root/root.pem", "--ca-key", pki_dir / "root/root.key.pem"]
    assert certs("device", *ca, "--device-id", "dev-2", "--out", pki_dir / "d", "--days", "30") == 0
    leaf = pki.load_certificate((pki_dir / "d/dev-2.pem").read_bytes())
    assert 29 < (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 30
    assert pki.load_certificates((pki_dir / "d/dev-2.chain.pem").read_bytes()) == [leaf]  # no root in a chain
    assert openssl("verify", "-CAfile", "root/root.pem", "d/dev-2.pem", cwd=pki_dir).returncode == 0

    assert certs("verification", *ca, "--code", "8A1F0C9B2E", "--out", pki_dir / "verify.pem") == 0
    check = pki.load_certificate((pki_dir / "verify.pem").read_bytes())
    assert pki.common_name(check) == "8A1F0C9B2E"
    assert openssl("verify", "-CAfile", "root/root.pem", "verify.pem", cwd=pki_dir).returncode == 0
    # the intermediate proves possession of its own key the same way
    inter = [
        "--ca-cert",
        pki_dir / "inter/intermediate.pem",
        "--ca-key",
        pki_dir / "inter/intermediate.key.pem",
    ]
    assert certs("verification", *inter, "--code", "77AA", "--out", pki_dir / "verify2.pem") == 0
    result = openssl(
        "verify", "-partial_chain", "-CAfile", "inter/intermediate.pem", "verify2.pem", cwd=pki_dir
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_openssl
def test_self_signed_verifies_against_itself(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)  # no CA, no passphrase needed
    assert certs("self-signed", "--device-id", "solo-7", "--out", tmp_path, "--key-type", "rsa2048") == 0
    cert = pki.load_certificate((tmp_path / "solo-7.pem").read_bytes())
    assert pki.common_name(cert) == pki.issuer_common_name(cert) == "solo-7"
    assert pki.key_type_name(cert.public_key()) == "RSA 2048"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"solo-7{s}" for s in DEVICE_SUFFIXES)
    result = openssl("verify", "-CAfile", "solo-7.pem", "solo-7.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_device_ids_file_issues_many(pki_dir: Path):
    ids_file = pki_dir / "ids.txt"
    ids_file.write_text("# line 2\nfab-001\n\n  fab-002  \nfab-003\n")
    ca = ["--ca-cert", pki_dir / "inter/chain.pem", "--ca-key", pki_dir / "inter/intermediate.key.pem"]
    assert certs("device", *ca, "--device-ids", ids_file, "--out", pki_dir / "batch") == 0
    for device_id in ("fab-001", "fab-002", "fab-003"):
        cert = pki.load_certificate((pki_dir / f"batch/{device_id}.pem").read_bytes())
        assert pki.common_name(cert) == device_id
    assert len(list((pki_dir / "batch").iterdir())) == 15


@needs_openssl
def test_rsa4096_root_issues_a_verifiable_rsa_leaf(tmp_path: Path, env):
    # the only RSA-4096 key in the suite: the anchors' key size still works
    assert certs("root", "--out", tmp_path, "--key-type", "rsa4096") == 0
    assert certs(
        "device", "--ca-cert", tmp_path / "root.pem", "--ca-key", tmp_path / "root.key.pem",
        "--device-id", "big-1", "--key-type", "rsa2048", "--out", tmp_path,
    ) == 0  # fmt: skip
    root = pki.load_certificate((tmp_path / "root.pem").read_bytes())
    assert pki.key_type_name(root.public_key()) == "RSA 4096"
    assert openssl("verify", "-CAfile", "root.pem", "big-1.pem", cwd=tmp_path).returncode == 0


@posix_modes
def test_force_replaces_existing_files(pki_dir: Path):
    ca = ["--ca-cert", pki_dir / "root/root.pem", "--ca-key", pki_dir / "root/root.key.pem"]
    assert certs("device", *ca, "--device-id", "dev-5", "--out", pki_dir / "d") == 0
    first = (pki_dir / "d/dev-5.pem").read_bytes()
    assert certs("device", *ca, "--device-id", "dev-5", "--out", pki_dir / "d", "--force") == 0
    assert (pki_dir / "d/dev-5.pem").read_bytes() != first
    assert mode(pki_dir / "d/dev-5.key.der") == 0o600
    assert sorted(path.name for path in (pki_dir / "d").iterdir()) == sorted(
        f"dev-5{s}" for s in DEVICE_SUFFIXES
    )


@needs_openssl
@pytest.mark.smoke
def test_show_prints_what_iot_central_shows(pki_dir: Path, capsys):
    capsys.readouterr()
    assert certs("show", pki_dir / "root/root.pem", "--json") == 0
    (info,) = json.loads(capsys.readouterr().out)["certificates"]
    fingerprint = openssl(
        "x509", "-in", "root/root.pem", "-noout", "-fingerprint", "-sha1", cwd=pki_dir
    ).stdout
    assert info["thumbprint_sha1"] == fingerprint.strip().split("=", 1)[1].replace(":", "")
    fingerprint = openssl(
        "x509", "-in", "root/root.pem", "-noout", "-fingerprint", "-sha256", cwd=pki_dir
    ).stdout
    assert info["thumbprint_sha256"] == fingerprint.strip().split("=", 1)[1].replace(":", "")
    serial = openssl("x509", "-in", "root/root.pem", "-noout", "-serial", cwd=pki_dir).stdout
    assert int(info["serial"], 16) == int(serial.strip().split("=", 1)[1], 16)
    assert info["is_ca"] is True and info["key_type"] == "EC P-256"
    assert info["subject"] == info["issuer"] == "CN=iotcprov Test Root CA"
    assert {"not_before", "not_after", "self_signed"} <= info.keys()

    assert certs("show", pki_dir / "inter/chain.pem") == 0
    text = capsys.readouterr().out
    assert "CN=iotcprov Test Intermediate CA" in text and "CA:          yes" in text
    assert info["thumbprint_sha1"] not in text  # chain.pem holds no root


def test_python_api_returns_what_it_wrote(tmp_path: Path):
    root = pki_files.create_root(tmp_path / "ca", key_passphrase=b"python-api-pass")
    assert root.key_encrypted and root.secret_files == [tmp_path / "ca/root.key.pem"]
    result = pki_files.create_device_certs(
        tmp_path / "dev", ca_cert=tmp_path / "ca/root.pem", ca_key=tmp_path / "ca/root.key.pem",
        ca_passphrase=lambda: b"python-api-pass", device_ids=["a-1", "a-2"],
    )  # fmt: skip
    assert [issued.name for issued in result.issued] == ["a-1", "a-2"]
    assert all(path.exists() for path in result.files) and len(result.files) == 10
    assert pki_files.show(tmp_path / "dev/a-1.der")[0].common_name == "a-1"


def test_passphrase_is_asked_only_for_an_encrypted_key(tmp_path: Path):
    asked: list[str] = []

    def ask() -> bytes:
        asked.append("asked")
        return b"der-passphrase"

    key = pki.generate_key()
    plain, encrypted = tmp_path / "plain.der", tmp_path / "encrypted.der"
    plain.write_bytes(pki.key_to_der(key))
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"der-passphrase"),
        )
    )  # fmt: skip
    assert pki_files.load_key_file(plain, ask).public_key() == key.public_key() and asked == []
    assert pki_files.load_key_file(encrypted, ask).public_key() == key.public_key() and asked == ["asked"]
    with pytest.raises(InputError, match="--ca-key: wrong passphrase"):
        pki_files.load_key_file(encrypted, b"other")
    with pytest.raises(InputError, match="is encrypted; set IOTCPROV_CA_PASSPHRASE"):
        pki_files.load_key_file(encrypted, None)


# ---------------------------------------------------------------- bad input: exit 2, nothing written


def assert_refused(capsys, before: dict[str, bytes], folder: Path, *args: object, match: str) -> str:
    capsys.readouterr()
    assert certs(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("iotcprov: error: ") and err.count("\n") == 1, err
    assert match in err, err
    assert PASS not in err
    assert snapshot(folder) == before
    return err


@pytest.mark.parametrize(
    ("device_args", "match"),
    [
        (["--device-id", "bad id!"], "--device-id: character ' ' at position 4"),
        (["--device-id", "x" * 65], "--device-id: 'xxxx"),
        (["--device-ids", "ids.txt"], "--device-ids: line 3: character '_'"),
    ],
)
def test_illegal_device_id(pki_dir: Path, capsys, device_args, match):
    (pki_dir / "ids.txt").write_text("ok-1\nok-2\nnot_ok\n")
    args = [a if a != "ids.txt" else pki_dir / a for a in device_args]
    ca = ["--ca-cert", pki_dir / "root/root.pem", "--ca-key", pki_dir / "root/root.key.pem"]
    before = snapshot(pki_dir)
    assert_refused(capsys, before, pki_dir, "device", *ca, *args, "--out", pki_dir / "out", match=match)
    assert not (pki_dir / "out").exists()


def test_ca_cert_that_is_not_a_ca(pki_dir: Path, capsys):
    ca = ["--ca-cert", pki_dir / "root/root.pem", "--ca-key", pki_dir / "root/root.key.pem"]
    assert certs("device", *ca, "--device-id", "leaf-1", "--out", pki_dir / "leaf") == 0
    before = snapshot(pki_dir)
    fake_ca = ["--ca-cert", pki_dir / "leaf/leaf-1.pem", "--ca-key", pki_dir / "leaf/leaf-1.key.pem"]
    assert_refused(
        capsys, before, pki_dir, "device", *fake_ca, "--device-id", "dev-1", "--out", pki_dir / "out",
        match="--ca-cert: " + str(pki_dir / "leaf/leaf-1.pem") + " (CN=leaf-1) is not a CA certificate",
    )  # fmt: skip
    assert_refused(
        capsys, before, pki_dir, "intermediate", *fake_ca, "--out", pki_dir / "out", match="is not a CA"
    )


def test_key_that_does_not_match_the_certificate(pki_dir: Path, capsys):
    before = snapshot(pki_dir)
    wrong = ["--ca-cert", pki_dir / "root/root.pem", "--ca-key", pki_dir / "inter/intermediate.key.pem"]
    assert_refused(
        capsys, before, pki_dir, "device", *wrong, "--device-id", "dev-1", "--out", pki_dir / "out",
        match="--ca-key: " + str(pki_dir / "inter/intermediate.key.pem") + " does not belong to --ca-cert",
    )  # fmt: skip
    assert_refused(
        capsys, before, pki_dir, "verification", *wrong, "--code", "ABC", "--out", pki_dir / "v.pem",
        match="does not belong",
    )  # fmt: skip


def test_wrong_passphrase(pki_dir: Path, capsys, monkeypatch):
    monkeypatch.setenv(ENV, "not-the-passphrase")
    before = snapshot(pki_dir)
    ca = ["--ca-cert", pki_dir / "root/root.pem", "--ca-key", pki_dir / "root/root.key.pem"]
    err = assert_refused(
        capsys, before, pki_dir, "device", *ca, "--device-id", "dev-1", "--out", pki_dir / "out",
        match="--ca-key: wrong passphrase",
    )  # fmt: skip
    assert "not-the-passphrase" not in err


def test_existing_output_file(pki_dir: Path, capsys):
    out = pki_dir / "out"
    out.mkdir()
    (out / "dev-2.key.der").write_bytes(b"keep me")  # one of the five outputs of dev-2
    before = snapshot(pki_dir)
    ca = ["--ca-cert", pki_dir / "root/root.pem", "--ca-key", pki_dir / "root/root.key.pem"]
    assert_refused(
        capsys, before, pki_dir, "device", *ca, "--device-id", "dev-1", "--device-id", "dev-2", "--out", out,
        match="already exists; use --force",
    )  # fmt: skip
    assert_refused(capsys, before, pki_dir, "root", "--out", pki_dir / "root", match="root.pem")


def test_other_bad_values(pki_dir: Path, capsys, monkeypatch):
    before = snapshot(pki_dir)
    ca = ["--ca-cert", pki_dir / "root/root.pem", "--ca-key", pki_dir / "root/root.key.pem"]
    assert_refused(capsys, before, pki_dir, "device", *ca, "--device-id", "d", "--days", "0",
                   "--out", pki_dir / "o", match="--days: 0")  # fmt: skip
    assert_refused(capsys, before, pki_dir, "verification", *ca, "--code", "has space",
                   "--out", pki_dir / "v.pem", match="--code:")  # fmt: skip
    assert_refused(capsys, before, pki_dir, "device", "--ca-cert", pki_dir / "nope.pem", "--ca-key",
                   pki_dir / "root/root.key.pem", "--device-id", "d", "--out", pki_dir / "o",
                   match="--ca-cert: " + str(pki_dir / "nope.pem") + " does not exist")  # fmt: skip
    assert_refused(capsys, before, pki_dir, "show", pki_dir / "root/root.key.pem",
                   match="holds a private key, not a certificate")  # fmt: skip
    monkeypatch.setenv(ENV, "short")
    assert_refused(capsys, before, pki_dir, "root", "--out", pki_dir / "new",
                   match="at least 8")  # fmt: skip


def test_encrypted_ca_key_without_passphrase_or_terminal(pki_dir: Path):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    before = snapshot(pki_dir)
    result = subprocess.run(
        [sys.executable, "-m", "iotcprov", "certs", "device", "--ca-cert", "root/root.pem",
         "--ca-key", "root/root.key.pem", "--device-id", "dev-1", "--out", "out"],
        cwd=pki_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"iotcprov: error: CA passphrase: set {ENV}; there is no terminal to prompt "
        "for the passphrase of CA key root/root.key.pem"
    )
    assert snapshot(pki_dir) == before


def test_service_errors_are_input_errors(tmp_path: Path):
    with pytest.raises(InputError, match="--key-type: 'dsa'"):
        pki_files.create_root(tmp_path, key_type="dsa")
    with pytest.raises(InputError, match="repeats line 1"):
        (tmp_path / "ids").write_text("a\na\n")
        pki_files.read_device_ids(tmp_path / "ids")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids"]
