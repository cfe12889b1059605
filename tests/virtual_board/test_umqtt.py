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
