"""TLS peers for the umqtt.simple stand-in: a test PKI, the amqtt broker, a scripted MQTT peer."""

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(folder: Path, ca_name: str = "vboard test CA") -> dict[str, Path]:
    """A CA and a server certificate for localhost / 127.0.0.1. Returns the file paths."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name(ca_name)).issuer_name(_name(ca_name))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "ca_der": folder / "ca.der", "ca_pem": folder / "ca.pem",
        "cert": folder / "server.pem", "key": folder / "server.key",
    }
    paths["ca_der"].write_bytes(ca_cert.public_bytes(serialization.Encoding.DER))
    paths["ca_pem"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return paths


class AmqttBroker:
    """The amqtt broker (an independent MQTT implementation) on 127.0.0.1, TLS, in its own thread.

    `watch(topic)` subscribes a host-side amqtt client and returns a list that fills with
    (topic, payload, qos) as messages arrive.
    """

    def __init__(self, pki: dict[str, Path]) -> None:
        self.pki = pki
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._broker = None
        self._clients: list = []

    def __enter__(self) -> "AmqttBroker":
        self._thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *exc_info) -> None:
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, coroutine, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _start(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {
                "default": {
                    "type": "tcp", "bind": "127.0.0.1:0", "ssl": True,
                    "certfile": str(self.pki["cert"]), "keyfile": str(self.pki["key"]),
                }
            },
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config, loop=self._loop)
        await self._broker.start()
        server = self._broker._servers["default"].instance
        self.port = server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        for client in self._clients:
            await client.disconnect()
        await self._broker.shutdown()

    def watch(self, topic: str) -> "Received":
        received = Received()
        self._run(self._watch(topic, received))
        return received

    async def _watch(self, topic: str, received: "Received") -> None:
        from amqtt.client import MQTTClient

        client = MQTTClient(client_id=f"host-watcher-{len(self._clients)}")
        await client.connect(f"mqtts://localhost:{self.port}/", cafile=str(self.pki["ca_pem"]))
        await client.subscribe([(topic, 1)])
        self._clients.append(client)

        async def pump() -> None:
            while True:
                message = await client.deliver_message()
                if message is None:
                    return
                received.add((message.topic, bytes(message.data), message.qos))

        self._loop.create_task(pump())


class Received:
    """Messages a host-side client received, with a wait for the count to reach n."""

    def __init__(self) -> None:
        self.messages: list = []
        self._changed = threading.Condition()

    def add(self, message: tuple) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list:
        with self._changed:
            self._changed.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


class ScriptedPeer:
    """A one-connection TLS peer that reads CONNECT and then acts out `behaviour`:

    "refuse:<rc>"          send CONNACK with return code rc
    "close"                close before any CONNACK
    "accept-then-close"    send CONNACK 0, then close
    "record"               send CONNACK 0, then keep every byte the client sends (`received`)
                           without answering, until it closes or has been quiet for 1.5 s
    """

    def __init__(self, pki: dict[str, Path], behaviour: str) -> None:
        self.behaviour = behaviour
        self.connect_packet = b""
        self.received = b""
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(pki["cert"], pki["key"])
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.done = threading.Event()

    def __enter__(self) -> "ScriptedPeer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._listener.close()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        try:
            raw, _ = self._listener.accept()
        except OSError:
            return
        try:
            with self._context.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(20)
                self.connect_packet = _read_packet(conn)
                if self.behaviour.startswith("refuse:"):
                    conn.sendall(bytes((0x20, 2, 0, int(self.behaviour.split(":")[1]))))
                    conn.recv(1)  # the client gives up and closes
                elif self.behaviour == "accept-then-close":
                    conn.sendall(b"\x20\x02\x00\x00")
                elif self.behaviour == "record":
                    conn.sendall(b"\x20\x02\x00\x00")
                    conn.settimeout(1.5)
                    with contextlib.suppress(TimeoutError):
                        while chunk := conn.recv(4096):
                            self.received += chunk
        except (OSError, ssl.SSLError):
            pass
        finally:
            raw.close()
            self.done.set()


def _read_packet(conn: ssl.SSLSocket) -> bytes:
    header = conn.recv(1)
    size, shift, length_bytes = 0, 0, b""
    while True:
        byte = conn.recv(1)
        length_bytes += byte
        size |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            break
        body += chunk
    return header + length_bytes + body
