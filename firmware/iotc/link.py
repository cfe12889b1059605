# One MQTT session over TLS on umqtt.simple, with every wait bounded: select.poll with a
# deadline before each read, because a TLS socket on an ESP32 has no timeout after connect and
# a half-open link would otherwise block forever (docs: spec/micropython-esp32.md). Each wait
# feeds the watchdog first, so the longest unfed stretch is one connect or one bounded read.

import errno
import select
import time

from umqtt.simple import MQTTClient, MQTTException  # noqa: F401  (MQTTException re-exported)

from iotc import feed

TRANSPORT_ERRORS = (OSError, IndexError, ValueError, AssertionError)  # how umqtt fails


def describe(error):
    """A short, secret-free description of a transport error for reason=."""
    if isinstance(error, OSError) and error.args:
        return "OSError %s" % error.args[0]
    return type(error).__name__


class Link(MQTTClient):
    """An open session: publish, subscribe, ping, and wait(ms) for what the server sends.
    Errors are umqtt's: OSError (socket, TLS, timeout), MQTTException(code), IndexError.
    umqtt's subscribe() and publish(qos=1) wait through wait_msg(), which is bounded here."""

    packets_out = 0  # MQTT packets sent and received by all links since boot (for benchmarks)
    packets_in = 0
    poller = None

    def __init__(self, host, port, client_id, user, password, ctx, on_message, keepalive, timeout_s):
        MQTTClient.__init__(
            self, client_id, host, port=port, user=user, password=password, keepalive=keepalive, ssl=ctx
        )
        self.limit_ms = timeout_s * 1000
        self.set_callback(on_message)
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
        return MQTTClient.wait_msg(self)

    def connect(self, clean_session, timeout_s):
        """Returns the session-present flag. A failed connect leaves the socket closed."""
        try:
            try:
                present = MQTTClient.connect(self, clean_session=clean_session, timeout=timeout_s)
            except TypeError:  # umqtt.simple before 1.4 had no connect timeout
                present = MQTTClient.connect(self, clean_session=clean_session)
        except BaseException:
            self.close(False)
            raise
        self.count(1, 1)
        return present

    def count(self, sent, received):
        Link.packets_out += sent
        self.last_tx = time.ticks_ms()
        if received:
            Link.packets_in += received
            self.last_rx = self.last_tx

    def subscribe(self, topic, qos=1):
        MQTTClient.subscribe(self, topic, qos)
        self.count(1, 1)

    def publish(self, topic, payload, qos=0):
        MQTTClient.publish(self, topic, payload, qos=qos)
        self.count(1, qos)

    def ping(self):
        MQTTClient.ping(self)
        self.count(1, 0)

    def wait(self, ms):
        """Wait up to `ms` for one packet from the server and handle it (PUBLISH goes to
        on_message). True when a packet arrived."""
        if not self.readable(ms):
            return False
        op = MQTTClient.wait_msg(self)
        if op is not None and op & 0xF0 != 0x30:
            # An acknowledgement nobody waits for (umqtt leaves its body unread): skip it.
            self.sock.read(self.sock.read(1)[0])
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
