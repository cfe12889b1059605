# umqtt.simple for the virtual board, written for this project to behave on the wire and at the API
# as micropython-lib's umqtt.simple does at the version the board's release freezes
# (_vboard.config["umqtt"]: 1.4.0 in MicroPython v1.23/v1.24, 1.6.0 in v1.25/v1.26, 1.7.0 in
# v1.27/v1.28). MQTT 3.1.1 over a real socket, TLS through the
# SSLContext given as `ssl`, QoS 0 and 1, no automatic pings. Quirks kept, because the field has
# them (docs/compatibility.md):
# - a str's length is counted in characters but its UTF-8 bytes are sent (every version);
# - packet ids count up without wrapping and go out as their low 16 bits (every version);
# - SUBSCRIBE's remaining length is one byte (malformed from 128 bytes on; fixed after 1.7.0);
# - connect() takes no timeout before 1.5.0; unsubscribe() exists from 1.7.0; ssl=True with
#   ssl_params from 1.6.0.
# Errors as the real module: refused CONNACK -> MQTTException(code); refused SUBACK ->
# MQTTException(0x80); peer closed -> OSError(-1); closed before CONNACK -> IndexError; socket
# errors pass through. A failed connect() leaves the socket open.
import socket
import struct

import _vboard

VERSION = tuple(_vboard.config.get("umqtt") or (1, 7, 0))


class MQTTException(Exception):
    pass


def _length_prefix(value):
    # The real module's _send_str: len() of a str is its characters, not its UTF-8 bytes.
    return struct.pack("!H", len(value))


def _remaining_length(out, size):
    # Appends the variable-length Remaining Length (1-4 bytes); returns how many.
    count = 0
    while True:
        count += 1
        byte = size & 0x7F
        size >>= 7
        out.append(byte | 0x80 if size else byte)
        if not size:
            return count


class MQTTClient:
    def __init__(
        self,
        client_id,
        server,
        port=0,
        user=None,
        password=None,
        keepalive=0,
        ssl=None,
        ssl_params={},  # noqa: B006 - the documented signature (from 1.6.0)
    ):
        if port == 0:
            port = 8883 if ssl else 1883
        self.client_id = client_id
        self.sock = None
        self.server = server
        self.port = port
        self.ssl = ssl
        self.ssl_params = ssl_params
        self.pid = 0
        self.cb = None
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.lw_topic = None
        self.lw_msg = None
        self.lw_qos = 0
        self.lw_retain = False

    def _write_str(self, value):
        self.sock.write(_length_prefix(value))
        self.sock.write(value)  # a str goes out as UTF-8

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        assert 0 <= qos <= 2
        assert topic
        self.lw_topic = topic
        self.lw_msg = msg
        self.lw_qos = qos
        self.lw_retain = retain

    def _open(self, timeout):
        self.sock = socket.socket()
        if timeout is not None or VERSION >= (1, 5, 0):
            self.sock.settimeout(timeout)
        address = socket.getaddrinfo(self.server, self.port)[0][-1]
        self.sock.connect(address)
        if self.ssl is True and VERSION >= (1, 6, 0):
            import ssl

            self.sock = ssl.wrap_socket(self.sock, **self.ssl_params)
        elif self.ssl:
            self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)

    def _session(self, clean_session):
        flags = clean_session << 1
        size = 10 + 2 + len(self.client_id)
        if self.user:
            size += 2 + len(self.user) + 2 + len(self.pswd)
            flags |= 0xC0
        if self.keepalive:
            assert self.keepalive < 65536
        if self.lw_topic:
            size += 2 + len(self.lw_topic) + 2 + len(self.lw_msg)
            flags |= 0x4 | (self.lw_qos & 0x3) << 3 | self.lw_retain << 5
        head = bytearray(b"\x10")
        _remaining_length(head, size)
        self.sock.write(head)
        self.sock.write(b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack("!H", self.keepalive))
        self._write_str(self.client_id)
        if self.lw_topic:
            self._write_str(self.lw_topic)
            self._write_str(self.lw_msg)
        if self.user:
            self._write_str(self.user)
            self._write_str(self.pswd)
        ack = self.sock.read(4)
        assert ack[0] == 0x20 and ack[1] == 0x02
        if ack[3] != 0:
            raise MQTTException(ack[3])
        return ack[2] & 1  # session present

    if VERSION >= (1, 5, 0):

        def connect(self, clean_session=True, timeout=None):
            self._open(timeout)
            return self._session(clean_session)

    else:

        def connect(self, clean_session=True):
            self._open(None)
            return self._session(clean_session)

    def disconnect(self):
        self.sock.write(b"\xe0\x00")
        self.sock.close()

    def ping(self):
        self.sock.write(b"\xc0\x00")

    def publish(self, topic, msg, retain=False, qos=0):
        size = 2 + len(topic) + len(msg) + (2 if qos > 0 else 0)
        assert size < 2097152
        head = bytearray((0x30 | qos << 1 | retain,))
        _remaining_length(head, size)
        self.sock.write(head)
        self._write_str(topic)
        if qos > 0:
            self.pid += 1
            pid = self.pid
            self.sock.write(struct.pack("!H", pid))  # 65536 goes out as 0
        self.sock.write(msg)
        if qos == 1:
            while True:
                if self.wait_msg() == 0x40:
                    assert self.sock.read(1) == b"\x02"
                    answered = self.sock.read(2)
                    if answered[0] << 8 | answered[1] == pid:  # never true once pid passed 65535
                        return
        elif qos == 2:
            assert 0

    def _request(self, kind, topic, ack_kind, ack_size, qos=None):
        # SUBSCRIBE (qos given) or UNSUBSCRIBE, then wait for its acknowledgement.
        self.pid += 1
        pid = self.pid
        size = 2 + 2 + len(topic) + (1 if qos is not None else 0)
        head = bytearray(4)
        head[0] = kind
        struct.pack_into("!BH", head, 1, size, pid)  # one length byte: wrong from 128 on
        self.sock.write(head)
        self._write_str(topic)
        if qos is not None:
            self.sock.write(bytes((qos,)))
        sent = struct.pack("!H", pid)
        while True:
            if self.wait_msg() == ack_kind:
                ack = self.sock.read(ack_size)
                assert ack[1] == sent[0] and ack[2] == sent[1]  # the low 16 bits, as sent
                if qos is not None and ack[3] == 0x80:
                    raise MQTTException(ack[3])
                return

    def subscribe(self, topic, qos=0):
        assert self.cb is not None, "Subscribe callback is not set"
        self._request(0x82, topic, 0x90, 4, qos)

    if VERSION >= (1, 7, 0):

        def unsubscribe(self, topic):
            self._request(0xA2, topic, 0xB0, 3)

    def wait_msg(self):
        # One packet: a PUBLISH goes to the callback; other packet types are returned with their
        # body unread (publish() and subscribe() read their acks). None when nothing is waiting.
        first = self.sock.read(1)
        self.sock.setblocking(True)
        if first is None:
            return None
        if first == b"":
            raise OSError(-1)
        if first == b"\xd0":  # PINGRESP
            assert self.sock.read(1)[0] == 0
            return None
        op = first[0]
        if op & 0xF0 != 0x30:
            return op
        size = self._read_remaining_length()
        topic_size = self.sock.read(2)
        topic_size = topic_size[0] << 8 | topic_size[1]
        topic = self.sock.read(topic_size)
        size -= topic_size + 2
        if op & 6:
            pid = self.sock.read(2)
            pid = pid[0] << 8 | pid[1]
            size -= 2
        msg = self.sock.read(size)
        self.cb(topic, msg)
        if op & 6 == 2:
            self.sock.write(b"\x40\x02" + struct.pack("!H", pid))
        elif op & 6 == 4:
            assert 0
        return op

    def _read_remaining_length(self):
        size = 0
        shift = 0
        while True:
            byte = self.sock.read(1)[0]
            size |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return size
            shift += 7

    def check_msg(self):
        self.sock.setblocking(False)
        return self.wait_msg()
