"""A sans-I/O MQTT 3.1.1 codec: packets as dataclasses, an incremental parser, encoders.

No sockets and no clock. `Parser.feed(data)` takes bytes as they arrive and returns the complete
packets; anything that is not well-formed MQTT 3.1.1 raises `MqttProtocolError`, after which the
connection must be closed (the parser stays broken). Both directions are decoded so the same codec
serves the emulator and the benchmark's clients.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# CONNACK return codes (MQTT 3.1.1 section 3.2.2.3)
ACCEPTED = 0
REFUSED_PROTOCOL_VERSION = 1
REFUSED_IDENTIFIER = 2
REFUSED_SERVER_UNAVAILABLE = 3
REFUSED_BAD_USERNAME_PASSWORD = 4
REFUSED_NOT_AUTHORIZED = 5

SUBACK_FAILURE = 0x80
MAX_REMAINING_LENGTH = 268_435_455  # four length bytes, the protocol's own limit
DEFAULT_MAX_PACKET = 512 * 1024  # IoT Hub messages are at most 256 KB; leave room for topic and bag


class MqttProtocolError(ValueError):
    """The byte stream is not valid MQTT 3.1.1; the connection must be closed."""


class UnsupportedProtocolVersion(MqttProtocolError):
    """A CONNECT for another protocol level: answer CONNACK 1, then close."""


@dataclass
class Connect:
    client_id: str
    username: str | None = None
    password: bytes | None = field(default=None, repr=False)  # a SAS token
    clean_session: bool = True
    keep_alive: int = 60
    will_topic: str | None = None
    will_message: bytes | None = None
    will_qos: int = 0
    will_retain: bool = False


@dataclass
class Connack:
    return_code: int = ACCEPTED
    session_present: bool = False


@dataclass
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    packet_id: int | None = None
    retain: bool = False
    dup: bool = False


@dataclass
class Puback:
    packet_id: int


@dataclass
class Pubrec:
    packet_id: int


@dataclass
class Pubrel:
    packet_id: int


@dataclass
class Pubcomp:
    packet_id: int


@dataclass
class Subscribe:
    packet_id: int
    topics: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Suback:
    packet_id: int
    return_codes: list[int] = field(default_factory=list)


@dataclass
class Unsubscribe:
    packet_id: int
    topics: list[str] = field(default_factory=list)


@dataclass
class Unsuback:
    packet_id: int


@dataclass
class Pingreq:
    pass


@dataclass
class Pingresp:
    pass


@dataclass
class Disconnect:
    pass


Packet = (
    Connect
    | Connack
    | Publish
    | Puback
    | Pubrec
    | Pubrel
    | Pubcomp
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
)

# ---------------------------------------------------------------- encoding


def _encode_length(length: int) -> bytes:
    if not 0 <= length <= MAX_REMAINING_LENGTH:
        raise MqttProtocolError(f"remaining length {length} out of range")
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _binary(raw)


def _binary(raw: bytes) -> bytes:
    if len(raw) > 0xFFFF:
        raise MqttProtocolError("string longer than 65535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _packet_id(value: int | None) -> bytes:
    if value is None or not 1 <= value <= 0xFFFF:
        raise MqttProtocolError(f"packet identifier {value!r} must be 1..65535")
    return struct.pack("!H", value)


def _frame(packet_type: int, flags: int, body: bytes) -> bytes:
    return bytes([(packet_type << 4) | flags]) + _encode_length(len(body)) + body


def encode(packet: Packet) -> bytes:
    """The bytes of one packet."""
    if isinstance(packet, Publish):
        if packet.qos not in (0, 1, 2):
            raise MqttProtocolError(f"QoS {packet.qos} does not exist")
        flags = (0x08 if packet.dup else 0) | (packet.qos << 1) | (0x01 if packet.retain else 0)
        body = _string(packet.topic)
        if packet.qos:
            body += _packet_id(packet.packet_id)
        return _frame(PUBLISH, flags, body + packet.payload)
    if isinstance(packet, Connect):
        flags = 0x02 if packet.clean_session else 0
        payload = _string(packet.client_id)
        if packet.will_topic is not None:
            flags |= 0x04 | (packet.will_qos << 3) | (0x20 if packet.will_retain else 0)
            payload += _string(packet.will_topic) + _binary(packet.will_message or b"")
        if packet.username is not None:
            flags |= 0x80
            payload += _string(packet.username)
        if packet.password is not None:
            flags |= 0x40
            payload += _binary(packet.password)
        header = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", packet.keep_alive)
        return _frame(CONNECT, 0, header + payload)
    if isinstance(packet, Connack):
        return _frame(CONNACK, 0, bytes([1 if packet.session_present else 0, packet.return_code]))
    if isinstance(packet, Puback):
        return _frame(PUBACK, 0, _packet_id(packet.packet_id))
    if isinstance(packet, Pubrec):
        return _frame(PUBREC, 0, _packet_id(packet.packet_id))
    if isinstance(packet, Pubrel):
        return _frame(PUBREL, 2, _packet_id(packet.packet_id))
    if isinstance(packet, Pubcomp):
        return _frame(PUBCOMP, 0, _packet_id(packet.packet_id))
    if isinstance(packet, Subscribe):
        if not packet.topics:
            raise MqttProtocolError("SUBSCRIBE needs at least one topic")
        body = _packet_id(packet.packet_id) + b"".join(_string(t) + bytes([q]) for t, q in packet.topics)
        return _frame(SUBSCRIBE, 2, body)
    if isinstance(packet, Suback):
        return _frame(SUBACK, 0, _packet_id(packet.packet_id) + bytes(packet.return_codes))
    if isinstance(packet, Unsubscribe):
        if not packet.topics:
            raise MqttProtocolError("UNSUBSCRIBE needs at least one topic")
        return _frame(UNSUBSCRIBE, 2, _packet_id(packet.packet_id) + b"".join(map(_string, packet.topics)))
    if isinstance(packet, Unsuback):
        return _frame(UNSUBACK, 0, _packet_id(packet.packet_id))
    if isinstance(packet, Pingreq):
        return _frame(PINGREQ, 0, b"")
    if isinstance(packet, Pingresp):
        return _frame(PINGRESP, 0, b"")
    if isinstance(packet, Disconnect):
        return _frame(DISCONNECT, 0, b"")
    raise TypeError(f"not an MQTT packet: {packet!r}")


# ---------------------------------------------------------------- decoding


class _Reader:
    """Reads fields from one packet's variable header and payload."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int) -> bytes:
        if count > self.remaining():
            raise MqttProtocolError("packet shorter than its fields")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def uint16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def binary(self) -> bytes:
        return self.take(self.uint16())

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MqttProtocolError("string is not valid UTF-8") from None
        if "\x00" in text:
            raise MqttProtocolError("string contains U+0000")
        return text

    def packet_id(self) -> int:
        value = self.uint16()
        if value == 0:
            raise MqttProtocolError("packet identifier 0 is not allowed")
        return value

    def rest(self) -> bytes:
        return self.take(self.remaining())

    def end(self) -> None:
        if self.remaining():
            raise MqttProtocolError("packet longer than its fields")


def _decode_connect(r: _Reader) -> Connect:
    name = r.string()
    level = r.byte()
    if name != "MQTT":
        raise MqttProtocolError(f"protocol name {name!r} is not MQTT")
    if level != 4:
        raise UnsupportedProtocolVersion(f"protocol level {level} (only MQTT 3.1.1, level 4)")
    flags = r.byte()
    if flags & 0x01:
        raise MqttProtocolError("CONNECT reserved flag set")
    keep_alive = r.uint16()
    client_id = r.string()
    will_topic = will_message = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos > 2:
            raise MqttProtocolError("will QoS 3")
        will_topic, will_message = r.string(), r.binary()
    elif flags & 0x38:
        raise MqttProtocolError("will QoS/retain without a will")
    username = r.string() if flags & 0x80 else None
    if flags & 0x40 and not flags & 0x80:
        raise MqttProtocolError("password without a user name")
    password = r.binary() if flags & 0x40 else None
    r.end()
    return Connect(
        client_id,
        username,
        password,
        bool(flags & 0x02),
        keep_alive,
        will_topic,
        will_message,
        will_qos,
        bool(flags & 0x20),
    )


def check_first_byte(first: int) -> None:
    """Raise for a fixed-header byte no valid packet starts with (reserved type, wrong flags)."""
    packet_type, flags = first >> 4, first & 0x0F
    if packet_type in (0, 15):
        raise MqttProtocolError(f"packet type {packet_type} is reserved")
    if packet_type == PUBLISH:
        if (flags >> 1) & 0x03 == 3:
            raise MqttProtocolError("PUBLISH with QoS 3")
        return
    expected = 2 if packet_type in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0
    if flags != expected:
        raise MqttProtocolError(f"packet type {packet_type} with flags {flags:#x}")


def _decode(packet_type: int, flags: int, body: bytes) -> Packet:
    r = _Reader(body)
    if packet_type == PUBLISH:
        qos = (flags >> 1) & 0x03  # 3 was refused by check_first_byte
        if qos == 0 and flags & 0x08:
            raise MqttProtocolError("DUP set on a QoS 0 PUBLISH")
        topic = r.string()
        if not topic or "+" in topic or "#" in topic:
            raise MqttProtocolError("PUBLISH topic empty or with a wildcard")
        packet_id = r.packet_id() if qos else None
        return Publish(topic, r.rest(), qos, packet_id, bool(flags & 0x01), bool(flags & 0x08))
    if packet_type == CONNECT:  # the other types' flags were checked by check_first_byte
        return _decode_connect(r)
    if packet_type == CONNACK:
        ack_flags, code = r.byte(), r.byte()
        r.end()
        if ack_flags & 0xFE:
            raise MqttProtocolError("CONNACK reserved flags set")
        return Connack(code, bool(ack_flags & 1))
    if packet_type in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        packet_id = r.packet_id()
        r.end()
        cls = {PUBACK: Puback, PUBREC: Pubrec, PUBREL: Pubrel, PUBCOMP: Pubcomp, UNSUBACK: Unsuback}
        return cls[packet_type](packet_id)
    if packet_type == SUBSCRIBE:
        packet_id, topics = r.packet_id(), []
        while r.remaining():
            topic, qos = r.string(), r.byte()
            if not topic or qos > 2:
                raise MqttProtocolError("SUBSCRIBE with an empty topic or QoS > 2")
            topics.append((topic, qos))
        if not topics:
            raise MqttProtocolError("SUBSCRIBE without topics")
        return Subscribe(packet_id, topics)
    if packet_type == SUBACK:
        packet_id, codes = r.packet_id(), list(r.rest())
        if not codes or any(c not in (0, 1, 2, SUBACK_FAILURE) for c in codes):
            raise MqttProtocolError("SUBACK without or with invalid return codes")
        return Suback(packet_id, codes)
    if packet_type == UNSUBSCRIBE:
        packet_id, topics = r.packet_id(), []
        while r.remaining():
            topics.append(r.string())
        if not topics:
            raise MqttProtocolError("UNSUBSCRIBE without topics")
        return Unsubscribe(packet_id, topics)
    if packet_type in (PINGREQ, PINGRESP, DISCONNECT):
        r.end()
        return {PINGREQ: Pingreq, PINGRESP: Pingresp, DISCONNECT: Disconnect}[packet_type]()
    raise MqttProtocolError(f"packet type {packet_type} is reserved")


class Parser:
    """Incremental decoder: feed bytes in any chunking, get whole packets back."""

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET) -> None:
        self.max_packet_size = max_packet_size
        self._buffer = bytearray()
        self._failed: MqttProtocolError | None = None

    def feed(self, data: bytes) -> list[Packet]:
        if self._failed:
            raise self._failed
        self._buffer += data
        packets: list[Packet] = []
        try:
            while (packet := self._next()) is not None:
                packets.append(packet)
        except MqttProtocolError as error:
            self._failed = error
            raise
        return packets

    def _next(self) -> Packet | None:
        buffer = self._buffer
        if buffer:
            check_first_byte(buffer[0])  # refuse garbage at once rather than wait for a length
        if len(buffer) < 2:
            return None
        length, multiplier, index = 0, 1, 1
        while True:
            if index >= len(buffer):
                return None
            byte = buffer[index]
            length += (byte & 0x7F) * multiplier
            index += 1
            if not byte & 0x80:
                break
            multiplier *= 128
            if index > 4:
                raise MqttProtocolError("remaining length longer than four bytes")
        if length > self.max_packet_size:
            raise MqttProtocolError(f"packet of {length} bytes exceeds the limit of {self.max_packet_size}")
        if len(buffer) < index + length:
            return None
        first = buffer[0]
        body = bytes(buffer[index : index + length])
        del buffer[: index + length]
        return _decode(first >> 4, first & 0x0F, body)
