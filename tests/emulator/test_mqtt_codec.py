"""The MQTT 3.1.1 codec: exact bytes, round trips in any chunking, and malformed input refused."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iotcprov.emulator import mqtt_codec as m

PACKETS = [
    m.Connect(
        "dev-1",
        "scope/registrations/dev-1/api-version=2019-03-31",
        b"SharedAccessSignature x",
        clean_session=False,
        keep_alive=60,
    ),
    m.Connect("c", will_topic="w", will_message=b"bye", will_qos=1, will_retain=True),
    m.Connack(m.REFUSED_NOT_AUTHORIZED, session_present=False),
    m.Connack(0, session_present=True),
    m.Publish("devices/d/messages/events/%24.ct=application%2Fjson", b'{"t":1}', qos=1, packet_id=7),
    m.Publish("a/b", b"", qos=0, retain=True),
    m.Publish("a/b", b"x" * 300, qos=2, packet_id=65535, dup=True),
    m.Puback(1),
    m.Pubrec(2),
    m.Pubrel(3),
    m.Pubcomp(4),
    m.Subscribe(9, [("$iothub/twin/res/#", 0), ("$iothub/methods/POST/#", 1)]),
    m.Suback(9, [0, 1, m.SUBACK_FAILURE]),
    m.Unsubscribe(10, ["a/#", "b"]),
    m.Unsuback(10),
    m.Pingreq(),
    m.Pingresp(),
    m.Disconnect(),
]


@pytest.mark.parametrize("packet", PACKETS, ids=lambda p: type(p).__name__)
def test_round_trip_whole_and_byte_by_byte(packet):
    data = m.encode(packet)
    assert m.Parser().feed(data) == [packet]
    parser, out = m.Parser(), []
    for byte in data:
        out += parser.feed(bytes([byte]))
    assert out == [packet]


def test_exact_bytes_of_known_packets():
    assert m.encode(m.Pingreq()) == b"\xc0\x00"
    assert m.encode(m.Connack(5)) == b"\x20\x02\x00\x05"
    assert m.encode(m.Puback(258)) == b"\x40\x02\x01\x02"
    assert m.encode(m.Publish("a", b"hi")) == b"\x30\x05\x00\x01ahi"
    connect = m.encode(m.Connect("id", keep_alive=10))
    assert connect == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x0a\x00\x02id"


def test_several_packets_in_one_chunk_and_multibyte_length():
    big = m.Publish("t", b"z" * 20000)
    data = m.encode(m.Pingreq()) + m.encode(big) + m.encode(m.Disconnect())
    assert m.Parser().feed(data) == [m.Pingreq(), big, m.Disconnect()]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00\x00", "reserved type 0"),
        (b"\xf0\x00", "reserved type 15"),
        (b"\xc1\x00", "PINGREQ with flags"),
        (b"\x82\x02\x00\x01", "SUBSCRIBE without topics"),
        (b"\x80\x05\x00\x01\x00\x01a", "SUBSCRIBE with wrong flags"),
        (b"\x36\x03\x00\x01a", "PUBLISH QoS 3"),
        (b"\x38\x03\x00\x01a", "DUP on QoS 0"),
        (b"\x32\x05\x00\x01a\x00\x00", "packet id 0"),
        (b"\x30\x03\x00\x01#", "wildcard in PUBLISH topic"),
        (b"\x30\x04\x00\x02\xc3\x28", "invalid UTF-8"),
        (b"\x30\x04\x00\x02a\x00", "U+0000 in a string"),
        (b"\x30\x03\x00\x05a", "string longer than the packet"),
        (b"\xc0\x01\x00", "PINGREQ with a body"),
        (b"\x30\xff\xff\xff\xff\x01", "five length bytes"),
        (b"\x10\x0c\x00\x04MQIs\x04\x02\x00\x0a\x00\x00", "protocol name"),
        (b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x0a\x00\x00", "CONNECT reserved flag"),
        (b"\x10\x0c\x00\x04MQTT\x04\x42\x00\x0a\x00\x00", "password without user name"),
        (b"\x20\x02\x02\x00", "CONNACK reserved flags"),
        (b"\x90\x03\x00\x01\x07", "SUBACK invalid code"),
    ],
)
def test_malformed_packets_raise_protocol_error(data, why):
    with pytest.raises(m.MqttProtocolError):
        m.Parser().feed(data)


def test_unsupported_level_is_its_own_error_and_parser_stays_failed():
    parser = m.Parser()
    with pytest.raises(m.UnsupportedProtocolVersion):
        parser.feed(b"\x10\x0c\x00\x04MQTT\x03\x02\x00\x0a\x00\x00")
    with pytest.raises(m.MqttProtocolError):
        parser.feed(m.encode(m.Pingreq()))


def test_oversized_packet_refused_before_its_body_arrives():
    parser = m.Parser(max_packet_size=1024)
    with pytest.raises(m.MqttProtocolError, match="exceeds"):
        parser.feed(b"\x30\x80\x10")  # announces 2048 bytes


def test_truncated_packets_wait_for_more():
    data = m.encode(PACKETS[0])
    for cut in range(len(data)):
        assert m.Parser().feed(data[:cut]) == []


def test_encoder_refuses_bad_packet_ids_and_qos():
    with pytest.raises(m.MqttProtocolError):
        m.encode(m.Publish("t", qos=1, packet_id=None))
    with pytest.raises(m.MqttProtocolError):
        m.encode(m.Puback(0))
    with pytest.raises(m.MqttProtocolError):
        m.encode(m.Publish("t", qos=3, packet_id=1))


# ---------------------------------------------------------------- property-based

topics = st.text(
    st.characters(blacklist_characters="\x00+#", blacklist_categories=("Cs",)), min_size=1, max_size=40
)
packet_ids = st.integers(1, 65535)
publishes = st.builds(
    lambda topic, payload, qos, pid, retain: m.Publish(
        topic, payload, qos, pid if qos else None, retain, False
    ),
    topics,
    st.binary(max_size=300),
    st.integers(0, 2),
    packet_ids,
    st.booleans(),
)
connects = st.builds(
    m.Connect,
    st.text(max_size=30).filter(lambda s: "\x00" not in s),
    st.none() | st.text(max_size=60).filter(lambda s: "\x00" not in s),
    st.none(),
    st.booleans(),
    st.integers(0, 65535),
)
any_packet = st.one_of(
    publishes,
    connects,
    st.builds(m.Puback, packet_ids),
    st.builds(
        m.Subscribe, packet_ids, st.lists(st.tuples(topics, st.integers(0, 2)), min_size=1, max_size=4)
    ),
    st.builds(m.Suback, packet_ids, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=4)),
    st.builds(m.Unsubscribe, packet_ids, st.lists(topics, min_size=1, max_size=3)),
    st.just(m.Pingreq()),
    st.just(m.Disconnect()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(any_packet, min_size=1, max_size=5), st.data())
def test_any_sequence_round_trips_in_any_chunking(packets, data):
    stream = b"".join(m.encode(p) for p in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser, out, start = m.Parser(), [], 0
    for cut in [*cuts, len(stream)]:
        out += parser.feed(stream[start:cut])
        start = cut
    assert out == packets


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_give_packets_or_protocol_errors(blob):
    parser = m.Parser(max_packet_size=4096)
    try:
        for packet in parser.feed(blob):
            m.encode(packet)  # whatever decodes must encode again
    except m.MqttProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(any_packet, st.integers(0, 40), st.integers(0, 255))
def test_mutated_packets_never_raise_anything_else(packet, position, value):
    data = bytearray(m.encode(packet))
    data[position % len(data)] = value
    with contextlib.suppress(m.MqttProtocolError):
        m.Parser(max_packet_size=4096).feed(bytes(data))
