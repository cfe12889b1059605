"""A small blocking MQTT-over-TLS client built on the project's codec, for precise protocol tests.

The SDK hides refusals and timing; this client shows the exact CONNACK codes, topics and closes.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

from iotcprov.emulator import mqtt_codec as mqtt


class RawClient:
    def __init__(
        self,
        address: str,
        port: int,
        ca_file: str,
        server_name: str | None = None,
        cert: tuple[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        if cert:
            context.load_cert_chain(*cert)
        raw = socket.create_connection((address, port), timeout=timeout)
        self.sock = context.wrap_socket(raw, server_hostname=server_name or address)
        self.sock.settimeout(timeout)
        self.parser = mqtt.Parser()
        self.pending: list = []
        self.packet_id = 0

    def send(self, packet) -> None:
        self.sock.sendall(mqtt.encode(packet))

    def connect(
        self,
        client_id: str,
        username: str,
        password: str | None = None,
        keep_alive: int = 60,
        clean_session: bool = True,
    ) -> mqtt.Connack:
        self.send(
            mqtt.Connect(
                client_id,
                username,
                password.encode() if password is not None else None,
                clean_session,
                keep_alive,
            )
        )
        return self.expect(mqtt.Connack)

    def receive(self, timeout: float = 10.0):
        """The next packet, or None when the server closed the connection."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return None
            if not data:
                return None
            self.pending += self.parser.feed(data)
        return self.pending.pop(0)

    def expect(self, kind, timeout: float = 10.0):
        packet = self.receive(timeout)
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
        return packet

    def closed_by_server(self, timeout: float = 10.0) -> bool:
        """True when the server closes the connection (skipping packets that come before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.receive(deadline - time.monotonic()) is None:
                    return True
            except TimeoutError:
                return False
        return False

    def subscribe(self, *topics: str, qos: int = 1) -> mqtt.Suback:
        self.packet_id += 1
        self.send(mqtt.Subscribe(self.packet_id, [(t, qos) for t in topics]))
        return self.expect(mqtt.Suback)

    def publish(self, topic: str, payload: bytes = b"", qos: int = 0) -> None:
        packet_id = None
        if qos:
            self.packet_id += 1
            packet_id = self.packet_id
        self.send(mqtt.Publish(topic, payload, qos, packet_id))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
