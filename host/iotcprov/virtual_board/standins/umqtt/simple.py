# umqtt.simple for the virtual board, written for this project from the documented public API and
# error behaviour of micropython-lib's umqtt.simple (frozen into ESP32 builds): MQTT 3.1.1 over a
# real socket, TLS through the SSLContext given as `ssl`, QoS 0 and 1, no automatic pings.
#
# Errors as the real module: refused CONNACK -> MQTTException(code); refused SUBACK ->
# MQTTException(0x80); peer closed -> OSError(-1); closed before CONNACK -> IndexError; socket
# errors pass through. A failed connect() leaves the socket open.
import socket
import struct


class MQTTException(Exception):
    pass


def _bytes(value):
    if isinstance(value, (bytes, bytearray)):
        return value
    return str(value).encode()


def _field(value):
    # A length-prefixed UTF-8 string or binary field.
    return struct.pack("!H", len(value)) + value


def _remaining_length(size):
    out = bytearray()
    while True:
        byte = size & 0x7F
        size >>= 7
        out.append(byte | 0x80 if size else byte)
        if not size:
            return out


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
        ssl_params={},  # noqa: B006 - the documented signature
    ):
        if port == 0:
            port = 8883 if ssl else 1883
        if keepalive >= 65536:
            raise ValueError("keepalive must be below 65536")
        self.client_id = client_id
        self.server = server
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.ssl_params = ssl_params
        self.sock = None
        self.cb = None
        self.pid = 0
        self._will = None

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        assert 0 <= qos <= 2
        assert topic
        self._will = (_bytes(topic), _bytes(msg), retain, qos)

    def connect(self, clean_session=True, timeout=None):
        self.sock = socket.socket()
        self.sock.settimeout(timeout)
        address = socket.getaddrinfo(self.server, self.port)[0][-1]
        self.sock.connect(address)
        if self.ssl is True:
            import ssl

            self.sock = ssl.wrap_socket(self.sock, **self.ssl_params)
        elif self.ssl:
            self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)

        flags = 0x02 if clean_session else 0
        payload = _field(_bytes(self.client_id))
        if self._will:
            topic, msg, retain, qos = self._will
            flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
            payload += _field(topic) + _field(msg)
        if self.user is not None:
            flags |= 0x80
            payload += _field(_bytes(self.user))
            if self.password is not None:
                flags |= 0x40
                payload += _field(_bytes(self.password))
        header = _field(b"MQTT") + bytes((4, flags)) + struct.pack("!H", self.keepalive)
        self.sock.write(b"\x10" + _remaining_length(len(header) + len(payload)) + header + payload)

        ack = self.sock.read(4)
        assert ack[0] == 0x20 and ack[1] == 0x02
        if ack[3] != 0:
            raise MQTTException(ack[3])
        return ack[2] & 1  # session present

    def disconnect(self):
        self.sock.write(b"\xe0\x00")
        self.sock.close()

    def ping(self):
        self.sock.write(b"\xc0\x00")

    def publish(self, topic, msg, retain=False, qos=0):
        assert qos in (0, 1), "QoS 2 is not supported"
        topic, msg = _bytes(topic), _bytes(msg)
        size = 2 + len(topic) + len(msg) + (2 if qos else 0)
        packet = bytearray((0x30 | qos << 1 | (1 if retain else 0),))
        packet += _remaining_length(size) + _field(topic)
        pid = 0
        if qos:
            pid = self._next_pid()
            packet += struct.pack("!H", pid)
        self.sock.write(packet)
        self.sock.write(msg)
        if qos:
            # Wait for the PUBACK; messages arriving meanwhile go to the callback.
            while True:
                if self.wait_msg() == 0x40:
                    size = self.sock.read(1)
                    assert size == b"\x02"
                    if struct.unpack("!H", self.sock.read(2))[0] == pid:
                        return

    def subscribe(self, topic, qos=0):
        assert self.cb is not None, "Subscribe callback is not set"
        topic = _bytes(topic)
        pid = self._next_pid()
        body = struct.pack("!H", pid) + _field(topic) + bytes((qos,))
        self.sock.write(b"\x82" + _remaining_length(len(body)) + body)
        while True:
            if self.wait_msg() == 0x90:
                ack = self.sock.read(4)  # remaining length, packet id, return code
                assert ack[1] == pid >> 8 and ack[2] == pid & 0xFF
                if ack[3] == 0x80:
                    raise MQTTException(ack[3])
                return

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
        topic_size = struct.unpack("!H", self.sock.read(2))[0]
        topic = self.sock.read(topic_size)
        size -= topic_size + 2
        qos = (op >> 1) & 3
        if qos:
            pid = struct.unpack("!H", self.sock.read(2))[0]
            size -= 2
        msg = self.sock.read(size)
        self.cb(topic, msg)
        if qos == 1:
            self.sock.write(b"\x40\x02" + struct.pack("!H", pid))
        elif qos == 2:
            assert 0, "QoS 2 is not supported"
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
