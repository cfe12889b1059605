"""Malformed and truncated MQTT over a real TLS connection: the server closes it and keeps serving."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iotcprov.emulator import Emulator
from iotcprov.emulator import mqtt_codec as mqtt

from tests.emulator.helpers import dps_client, dps_username

VALID_CONNECT = mqtt.encode(mqtt.Connect("fuzz", "scope/registrations/fuzz/api-version=2019-03-31", None))


def _open(emulator) -> ssl.SSLSocket:
    info = emulator.info
    context = ssl.create_default_context(cafile=info["ca_cert"])
    raw = socket.create_connection((info["dps"]["address"], info["dps"]["port"]), timeout=5)
    return context.wrap_socket(raw, server_hostname=info["dps"]["host"])


def _server_closes(sock: ssl.SSLSocket) -> bool:
    sock.settimeout(5)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    except TimeoutError:
        return False
    return True


def _bad_first_byte(data: bytes) -> bool:
    try:
        mqtt.check_first_byte(data[0])
    except mqtt.MqttProtocolError:
        return True
    return False


malformed = st.one_of(
    st.binary(min_size=1, max_size=64).filter(_bad_first_byte),
    # a CONNECT cut anywhere and completed with garbage
    st.builds(
        lambda cut: VALID_CONNECT[:cut] + b"\xff" * len(VALID_CONNECT), st.integers(0, len(VALID_CONNECT) - 1)
    ),
    st.builds(lambda b: b"\x30\xff\xff\xff\xff" + b, st.binary(max_size=8)),
    st.just(mqtt.encode(mqtt.Pingreq())),  # well-formed, but not a CONNECT first
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=malformed)
def test_malformed_first_packets_close_the_connection(emulator, data):
    sock = _open(emulator)
    try:
        sock.sendall(data)
        assert _server_closes(sock)
    finally:
        sock.close()


def test_truncated_packet_then_silence_is_closed_after_connect_timeout_or_eof(emulator):
    sock = _open(emulator)
    sock.sendall(VALID_CONNECT[:5])
    sock.close()  # the client vanishes mid-packet: the server must simply forget it
    client = dps_client(emulator)
    try:
        code = client.connect("fuzz", dps_username(emulator, "fuzz"), "SharedAccessSignature sr=x&sig=y&se=1")
        assert code.return_code == mqtt.REFUSED_NOT_AUTHORIZED  # still serving
    finally:
        client.close()


def test_protocol_errors_are_logged(emulator):
    before = len([e for e in emulator.admin.events() if e["kind"] == "protocol error"])
    sock = _open(emulator)
    try:
        sock.sendall(b"\x10\x0c\x00\x04MQIs\x04\x02\x00\x0a\x00\x00")  # a CONNECT for another protocol
        assert _server_closes(sock)
    finally:
        sock.close()
    errors = [e for e in emulator.admin.events() if e["kind"] == "protocol error"]
    assert len(errors) == before + 1 and "protocol name" in errors[-1]["reason"]


def _client_hello(host: str) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    with contextlib.suppress(ssl.SSLWantReadError):  # no server on the other side of the BIO
        tls.do_handshake()
    return outgoing.read()


def _open_connections(emulator, expected: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while (count := emulator.admin.stats()["open_connections"]) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_aborted_and_idle_handshakes_leave_no_connection_behind(emulator):
    info = emulator.info
    assert _open_connections(emulator, 0) == 0
    before = emulator.admin.stats()["counters"].get("hub.tls_failures", 0)
    hello = _client_hello(info["hub"]["host"])
    for _ in range(300):  # ClientHello, the server's first answer, then a TCP reset
        with socket.create_connection((info["hub"]["address"], info["hub"]["port"]), timeout=5) as sock:
            sock.sendall(hello)
            assert sock.recv(1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    idle = [
        socket.create_connection((info["dps"]["address"], info["dps"]["port"]), timeout=5) for _ in range(20)
    ]
    try:
        assert _open_connections(emulator, 20) == 20  # handshakes in progress are counted
    finally:
        for sock in idle:
            sock.close()
    assert _open_connections(emulator, 0) == 0
    assert emulator.admin.stats()["counters"]["hub.tls_failures"] == before + 300
    client = dps_client(emulator)  # and the server still serves
    try:
        assert (
            client.connect("fuzz", dps_username(emulator, "fuzz"), "x").return_code
            == mqtt.REFUSED_NOT_AUTHORIZED
        )
    finally:
        client.close()


def test_handshakes_beyond_the_limit_are_closed_at_once(tmp_path):
    with Emulator.running(tmp_path, extra_args=["--max-handshakes", "5"]) as emulator:
        hub = (emulator.info["hub"]["address"], emulator.info["hub"]["port"])
        idle = [socket.create_connection(hub, timeout=5) for _ in range(5)]  # handshakes never begun
        try:
            assert _open_connections(emulator, 5) == 5
            with socket.create_connection(hub, timeout=5) as extra:
                assert extra.recv(1) == b""  # closed at once, not after the 15 s handshake timeout
            assert emulator.admin.stats()["counters"]["hub.tls_busy"] == 1
        finally:
            for sock in idle:
                sock.close()
        assert _open_connections(emulator, 0) == 0
        client = dps_client(emulator)  # the limit counts handshakes in progress, not connections
        try:
            connack = client.connect("fuzz", dps_username(emulator, "fuzz"), "x")
            assert connack.return_code == mqtt.REFUSED_NOT_AUTHORIZED
        finally:
            client.close()
