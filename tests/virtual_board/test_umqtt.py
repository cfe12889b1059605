"""The umqtt.simple stand-in on a virtual board against real TLS MQTT peers.

The board verifies the server with an SSLContext holding the test CA (DER: the unix port's TLS
has no PEM parser). The amqtt broker is an independent MQTT implementation; the scripted peer
acts out the error cases (refused CONNACK, peer close, close before CONNACK).
"""

import pytest

from .tls_peers import AmqttBroker, ScriptedPeer, make_pki

PRELUDE = """
import select, time, tls
from umqtt.simple import MQTTClient, MQTTException
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(open('ca.der', 'rb').read())  # tls: positional only
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def mqtt_board(board, pki):
    (board.directory / "ca.der").write_bytes(pki["ca_der"].read_bytes())
    return board


def run_on_board(board, tmp_path, code: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + code)
    return board.run_mpremote("run", str(script), timeout=60).stdout


def test_publish_subscribe_and_check_msg_through_an_independent_broker(mqtt_board, pki, tmp_path):
    with AmqttBroker(pki) as broker:
        watcher = broker.watch("vb/#")
        out = run_on_board(mqtt_board, tmp_path, f"""
c = MQTTClient('vb-1', 'localhost', port={broker.port}, ssl=ctx, keepalive=60)
print('session', c.connect())
print('idle', c.check_msg())
got = []
c.set_callback(lambda topic, msg: got.append((topic, msg)))
c.subscribe(b'vb/#', qos=1)
c.publish(b'vb/q0', b'zero')
c.publish('vb/q1', 'one', qos=1)
print('puback received')
poller = select.poll()
poller.register(c.sock, select.POLLIN)
deadline = time.ticks_add(time.ticks_ms(), 10000)
while len(got) < 2 and time.ticks_diff(deadline, time.ticks_ms()) > 0:
    if not poller.poll(200):
        continue
    c.check_msg()
print('got', sorted(got))
c.ping()
c.disconnect()
""")
        seen_by_host = watcher.wait_for(2)
    assert "session 0" in out
    assert "idle None" in out
    assert "puback received" in out
    assert "got [(b'vb/q0', b'zero'), (b'vb/q1', b'one')]" in out
    # amqtt forwards at the subscription's QoS, so only topic and payload are compared
    assert sorted((topic, payload) for topic, payload, _qos in seen_by_host) == [
        ("vb/q0", b"zero"), ("vb/q1", b"one")
    ]


def test_server_is_verified_against_the_trusted_root(mqtt_board, pki, tmp_path):
    other_ca = make_pki(tmp_path / "other", ca_name="some other CA")
    (mqtt_board.directory / "other.der").write_bytes(other_ca["ca_der"].read_bytes())
    with AmqttBroker(pki) as broker:
        out = run_on_board(mqtt_board, tmp_path, f"""
wrong = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
wrong.load_verify_locations(open('other.der', 'rb').read())
c = MQTTClient('vb-2', 'localhost', port={broker.port}, ssl=wrong)
try:
    c.connect()
    print('connected anyway')
except ValueError as e:  # MicroPython's tls reports a failed verification as ValueError
    print('rejected:', str(e).strip())
""")
    assert "rejected: The certificate is not correctly signed by the trusted CA" in out


def test_refused_connack_raises_mqttexception_with_the_return_code(mqtt_board, pki, tmp_path):
    with ScriptedPeer(pki, "refuse:5") as peer:
        out = run_on_board(mqtt_board, tmp_path, f"""
c = MQTTClient('vb-3', 'localhost', port={peer.port}, user='dev', password='secret', ssl=ctx, keepalive=30)
c.set_last_will('vb/will', 'gone', retain=True, qos=1)
try:
    c.connect(clean_session=False)
except MQTTException as e:
    print('refused', e.args[0])
    c.sock.close()
""")
    assert "refused 5" in out
    packet = peer.connect_packet
    # MQTT 3.1.1 CONNECT: fixed header, "MQTT", level 4, flags, keepalive, then the payload fields
    assert packet[0] == 0x10
    assert packet[2:10] == b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04])
    assert packet[10:12] == (30).to_bytes(2, "big")
    assert packet[12:] == (
        b"\x00\x04vb-3" + b"\x00\x07vb/will" + b"\x00\x04gone" + b"\x00\x03dev" + b"\x00\x06secret"
    )


def test_peer_closing_after_connack_raises_oserror(mqtt_board, pki, tmp_path):
    with ScriptedPeer(pki, "accept-then-close") as peer:
        out = run_on_board(mqtt_board, tmp_path, f"""
c = MQTTClient('vb-4', 'localhost', port={peer.port}, ssl=ctx)
print('session', c.connect())
try:
    c.wait_msg()
except OSError as e:
    print('closed', e.args[0])
""")
    assert "session 0" in out
    assert "closed -1" in out


def test_peer_closing_before_connack_raises_indexerror(mqtt_board, pki, tmp_path):
    with ScriptedPeer(pki, "close") as peer:
        out = run_on_board(mqtt_board, tmp_path, f"""
c = MQTTClient('vb-5', 'localhost', port={peer.port}, ssl=ctx)
try:
    c.connect()
except IndexError:
    print('no connack')
""")
    assert "no connack" in out


# The stand-in per release (docs/compatibility.md): what the real umqtt.simple of that release does
# on the wire and at the API, quirks included, and v1.23's TLS key handling.


@pytest.fixture
def release_board(make_board, board_dir, pki):
    def start(release: str):
        (board_dir / "ca.der").write_bytes(pki["ca_der"].read_bytes())
        return make_board(release=release)

    return start


@pytest.mark.parametrize(("release", "has_timeout", "has_unsubscribe"), [
    ("1.23", False, False), ("1.24", False, False), ("1.25", True, False), ("1.26", True, False),
    ("1.27", True, True), ("1.28", True, True),
])  # fmt: skip
def test_each_release_has_its_umqtt_api(release_board, tmp_path, release, has_timeout, has_unsubscribe):
    board = release_board(release)
    out = run_on_board(board, tmp_path, """
c = MQTTClient('vb', 'localhost', port=1, ssl=ctx)
try:
    c.connect(True, 5)
except TypeError:
    print('connect takes no timeout')
except OSError:
    print('connect took a timeout')
print('unsubscribe', hasattr(c, 'unsubscribe'))
""")
    assert ("connect took a timeout" if has_timeout else "connect takes no timeout") in out
    assert f"unsubscribe {has_unsubscribe}" in out


def record(board, pki, tmp_path, code: str) -> bytes:
    """What the board's client sends to a peer that accepts and then answers nothing."""
    with ScriptedPeer(pki, "record") as peer:
        run_on_board(board, tmp_path, f"""
c = MQTTClient('vb', 'localhost', port={peer.port}, ssl=ctx)
c.connect()
c.set_callback(print)
try:
{code}
except OSError as e:  # the peer hangs up after 1.5 s of quiet
    print('closed', e)
""")
        peer.done.wait(10)
    return peer.received


@pytest.mark.parametrize("release", ["1.23", "1.28"])
def test_umqtt_quirks_reach_the_wire(release_board, pki, tmp_path, release):
    board = release_board(release)
    # A str is counted in characters and sent as UTF-8: "café" is 4 characters, 5 bytes, so the
    # remaining length is one short. Packet id 65536 goes out as 0 (and its PUBACK never matches).
    code = "    c.publish('t', 'caf\\u00e9')\n    c.pid = 65535\n    c.publish(b't', b'q', qos=1)"
    sent = record(board, pki, tmp_path, code)
    assert sent.startswith(b"\x30\x07\x00\x01t" + "café".encode())
    assert sent.endswith(b"\x32\x06\x00\x01t\x00\x00q")
    # SUBSCRIBE with a one-byte remaining length: 207 is written as 0xCF, a continuation bit set
    topic = "t/" + "x" * 200
    sent = record(board, pki, tmp_path, f"    c.subscribe({topic!r})")
    assert sent == b"\x82\xcf\x00\x01\x00\xca" + topic.encode() + b"\x00"


@pytest.mark.parametrize(("release", "pkcs8_loads"), [("1.23", False), ("1.24", True), ("1.28", True)])
def test_v1_23_refuses_pkcs8_der_keys_and_reads_sec1(release_board, pki, tmp_path, release, pkcs8_loads):
    from cryptography.hazmat.primitives import serialization
    from iotcprov.credentials import pki as host_pki

    board = release_board(release)
    key = host_pki.generate_key("ec")
    cert = host_pki.make_self_signed_device_cert("vb-key", key)
    board.directory.joinpath("leaf.der").write_bytes(host_pki.cert_to_der(cert))
    board.directory.joinpath("pkcs8.der").write_bytes(host_pki.key_to_der(key))
    board.directory.joinpath("sec1.der").write_bytes(host_pki.key_to_traditional_der(key))
    traditional = serialization.PrivateFormat.TraditionalOpenSSL  # SEC1 for an EC key
    sec1 = key.private_bytes(serialization.Encoding.DER, traditional, serialization.NoEncryption())
    assert host_pki.key_to_traditional_der(key) == sec1
    out = run_on_board(board, tmp_path, """
for name in ('pkcs8.der', 'sec1.der'):
    c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    try:
        c.load_cert_chain(open('leaf.der', 'rb').read(), open(name, 'rb').read())
        print(name, 'loaded')
    except ValueError as e:
        print(name, e)
""")
    assert "sec1.der loaded" in out
    assert ("pkcs8.der loaded" if pkcs8_loads else "pkcs8.der invalid key") in out
