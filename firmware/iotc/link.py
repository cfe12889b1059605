# One MQTT session over TLS on umqtt.simple, right on every umqtt version MicroPython v1.23-v1.28
# freezes (1.4.0-1.7.0; docs/compatibility.md). Every wait is bounded: select.poll with a deadline
# before each read, because a TLS socket on an ESP32 has no timeout after connect and a half-open
# link would otherwise block forever. Each wait feeds the watchdog first, so the longest unfed
# stretch is one connect or one bounded read. Where umqtt.simple is wrong for us, the link does
# the work itself:
# - CONNECT: umqtt 1.4.0 (v1.23, v1.24) takes no timeout, so nothing would bound TCP, the TLS
#   handshake or the CONNACK; here the socket has connect_timeout before it connects.
# - SUBSCRIBE: up to 1.7.0 its remaining length is one byte, malformed from 128 bytes on (the C2D
#   topic of a device ID of 92+ characters); here it is a proper variable-length field.
# - packet ids: umqtt never wraps them (65536 goes out as 0 and its PUBACK never matches).
# - text: umqtt counts a str's length in characters but sends its UTF-8 bytes; the link hands it
#   bytes only.
# - errors: every failure of the connection is an OSError (callers retry those as transport
#   faults, and nothing else). umqtt.simple reads a stream that ends early or holds a malformed
#   packet as an IndexError (a short read) or an AssertionError (its checks of PUBACK, PINGRESP,
#   QoS 2), and mbedTLS refuses the server's certificate with a ValueError from wrap_socket: the
#   link turns those into OSError where they happen, so a ValueError or AssertionError of the
#   firmware's own code (the on_message callback included) is never mistaken for the network.

import errno
import select
import socket
import struct
import time

from umqtt.simple import MQTTClient, MQTTException  # noqa: F401  (MQTTException re-exported)

from iotc import feed


def describe(error):
    """A short, secret-free description of a transport error (OSError) for reason=."""
    return "OSError %s" % str(error.args[0] if error.args else "")[:60]


class Link(MQTTClient):
    """An open session: publish, subscribe, ping, and wait(ms) for what the server sends.
    Errors: OSError (socket, TLS, timeout, a broken or malformed stream), MQTTException(code)
    (refused CONNECT or SUBSCRIBE); anything else is a fault of the firmware. umqtt's
    publish(qos=1) waits through wait_msg(), which is bounded here."""

    packets_out = 0  # MQTT packets sent and received by all links since boot (for benchmarks)
    packets_in = 0
    poller = None
    fault = None  # what on_message raised during the last read: raised again after umqtt's

    def __init__(self, host, port, client_id, user, password, ctx, on_message, keepalive, timeout_s):
        MQTTClient.__init__(
            self, client_id.encode(), host, port=port, user=user.encode(), password=password.encode(),
            keepalive=keepalive, ssl=ctx,
        )  # fmt: skip
        self.limit_ms = timeout_s * 1000
        self.on_message = on_message
        self.set_callback(self.received)
        self.last_rx = self.last_tx = time.ticks_ms()

    def readable(self, ms):
        feed()  # every wait for the server starts with a fed watchdog and is bounded by `ms`
        if self.poller is None:
            self.poller = select.poll()
            self.poller.register(self.sock, select.POLLIN)
        return bool(self.poller.poll(ms))

    def wait_msg(self):
        if not self.readable(self.limit_ms):
            raise OSError(errno.ETIMEDOUT)
        return self.read_msg()

    def read_msg(self):
        """umqtt's wait_msg, whose short reads (IndexError) and asserts mean a broken or odd
        stream: OSError. What the callback raised is ours, and raised as it was."""
        self.fault = None
        try:
            op = MQTTClient.wait_msg(self)
        except (IndexError, AssertionError):
            if self.fault is None:
                raise OSError("bad packet") from None
        if self.fault is not None:
            raise self.fault
        return op

    def received(self, topic, payload):
        """umqtt's callback: on_message, with its exceptions kept for read_msg."""
        try:
            self.on_message(topic, payload)
        except Exception as e:
            self.fault = e

    def connect(self, clean_session, timeout_s):
        """Open TCP, TLS and the MQTT session, each bounded by `timeout_s` (the socket's timeout
        covers TCP and the handshake; DNS is bounded by the resolver's own). Returns the
        session-present flag. A failed connect leaves the socket closed."""
        feed()
        try:
            self.sock = socket.socket()
            self.sock.settimeout(timeout_s)
            self.sock.connect(socket.getaddrinfo(self.server, self.port)[0][-1])
            try:
                self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)
            except ValueError as e:  # MicroPython's mbedTLS: the server's certificate was refused
                raise OSError("TLS " + str(e)) from None
            flags = 0xC0 | (2 if clean_session else 0)  # user name and password; clean session
            body = b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack("!H", self.keepalive)
            for data in (self.client_id, self.user, self.pswd):
                body += struct.pack("!H", len(data)) + data
            self.write(0x10, body)
            body = None
            if not self.readable(timeout_s * 1000):
                raise OSError(errno.ETIMEDOUT)
            ack = self.sock.read(4)
            if not ack:
                raise OSError(-1)  # the server closed the connection (umqtt's code for it)
            if len(ack) < 4 or ack[0] != 0x20 or ack[1] != 2:
                raise OSError("bad packet") from None
            if ack[3]:
                raise MQTTException(ack[3])
        except BaseException:
            self.close(False)
            raise
        self.count(1, 1)
        return ack[2] & 1

    def write(self, kind, msg):
        """Send one whole MQTT packet: its first byte `kind`, the variable-length remaining
        length, the body `msg`."""
        head = bytearray((kind,))
        size = len(msg)
        while True:
            byte = size & 0x7F
            size >>= 7
            head.append(byte | 0x80 if size else byte)
            if not size:
                break
        self.sock.write(head + msg)

    def count(self, sent, received):
        Link.packets_out += sent
        self.last_tx = time.ticks_ms()
        if received:
            Link.packets_in += received
            self.last_rx = self.last_tx

    def subscribe(self, topic, qos=1):
        if isinstance(topic, str):
            topic = topic.encode()
        self.pid = pid = self.pid % 65535 + 1  # 1..65535: 0 is not a packet id
        self.write(0x82, struct.pack("!H", pid) + struct.pack("!H", len(topic)) + topic + bytes((qos,)))
        while True:  # PUBLISHes that come first go to the callback, as in umqtt's own wait
            op = self.wait_msg()
            if op == 0x90:
                ack = self.sock.read(4)  # remaining length (2 + one code), packet id, code
                if len(ack) < 4:
                    raise OSError("bad packet") from None
                if (ack[1] << 8 | ack[2]) == pid:
                    break
            elif op is not None and op & 0xF0 != 0x30:  # another acknowledgement: skip its body
                size = self.sock.read(1)
                if not size:
                    raise OSError(-1)
                self.sock.read(size[0])
        if ack[3] == 0x80:
            raise MQTTException(0x80)
        self.count(1, 1)

    def publish(self, topic, payload, qos=0):
        if qos and self.pid >= 65535:
            self.pid = 0  # umqtt adds one before it uses the id
        if isinstance(topic, str):
            topic = topic.encode()
        if isinstance(payload, str):
            payload = payload.encode()
        try:
            MQTTClient.publish(self, topic, payload, qos=qos)
        except (IndexError, AssertionError):  # a malformed PUBACK, unless the callback's own
            if self.fault is None:
                raise OSError("bad packet") from None
            raise
        self.count(1, qos)

    def ping(self):
        MQTTClient.ping(self)
        self.count(1, 0)

    def wait(self, ms):
        """Wait up to `ms` for one packet from the server and handle it (PUBLISH goes to
        on_message). True when a packet arrived."""
        if not self.readable(ms):
            return False
        op = self.read_msg()
        if op is not None and op & 0xF0 != 0x30:
            # An acknowledgement nobody waits for (umqtt leaves its body unread): skip it.
            size = self.sock.read(1)
            if not size:
                raise OSError(-1)
            self.sock.read(size[0])
        Link.packets_in += 1
        self.last_rx = time.ticks_ms()
        return True

    def close(self, polite=True):
        if self.sock is None:
            return
        try:
            if polite:
                self.disconnect()
                Link.packets_out += 1
        except Exception:
            pass
        try:
            self.sock.close()
        except Exception:
            pass
        self.sock = None
        self.poller = None
