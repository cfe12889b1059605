# One MQTT session over TLS on umqtt.simple, with every wait bounded: select.poll with a
# deadline before each read, because a TLS socket on an ESP32 has no timeout after connect and
# a half-open link would otherwise block forever (docs: spec/micropython-esp32.md). Each wait
# feeds the watchdog first, so the longest unfed stretch is one connect or one bounded read.

import errno
import select
import time

from umqtt.simple import MQTTClient, MQTTException  # noqa: F401  (MQTTException re-exported)

from iotc import feed


def tls_context():
    """A client context that always verifies the server (roots added with trust())."""
    try:
        import tls
    except ImportError:  # MicroPython before 1.23 called it ssl
        import ssl as tls
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    return ctx


def trust(ctx, roots, cert=None, key=None):
    """Add the roots (DER, one per call: the unix port cannot parse PEM bundles) and, for
    X.509, the client certificate (PEM may carry the chain) and its key."""
    for der in roots:
        ctx.load_verify_locations(der)  # tls takes cadata positionally (ssl's wrapper: cadata=)
    if cert is not None:
        ctx.load_cert_chain(cert, key)


class _Client(MQTTClient):
    """umqtt.simple's client; its subscribe() and publish(qos=1) wait through wait_msg(), so
    bounding wait_msg bounds them too."""

    limit_ms = 30000
    poller = None

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


class Link:
    """An open session: publish, subscribe, ping, and wait(ms) for what the server sends.
    Errors are umqtt's: OSError (socket, TLS, timeout), MQTTException(code), IndexError."""

    packets_out = 0  # MQTT packets sent and received by all links since boot (for benchmarks)
    packets_in = 0

    def __init__(self, host, port, client_id, user, password, ctx, on_message, keepalive, timeout_s):
        self._client = _Client(
            client_id, host, port=port, user=user, password=password, keepalive=keepalive, ssl=ctx
        )
        self._client.limit_ms = timeout_s * 1000
        self._client.set_callback(on_message)
        self.last_rx = self.last_tx = time.ticks_ms()

    def connect(self, clean_session, timeout_s):
        """Returns the session-present flag. A failed connect leaves the socket open: close it."""
        client = self._client
        try:
            try:
                present = client.connect(clean_session=clean_session, timeout=timeout_s)
            except TypeError:  # umqtt.simple before 1.4 had no connect timeout
                present = client.connect(clean_session=clean_session)
        except BaseException:
            self.close(polite=False)
            raise
        Link.packets_out += 1
        Link.packets_in += 1
        self.last_rx = self.last_tx = time.ticks_ms()
        return present

    def subscribe(self, topic, qos=1):
        self._client.subscribe(topic, qos)
        Link.packets_out += 1
        Link.packets_in += 1
        self.last_rx = self.last_tx = time.ticks_ms()

    def publish(self, topic, payload, qos=0):
        self._client.publish(topic, payload, qos=qos)
        Link.packets_out += 1
        self.last_tx = time.ticks_ms()
        if qos:
            Link.packets_in += 1
            self.last_rx = self.last_tx

    def ping(self):
        self._client.ping()
        Link.packets_out += 1
        self.last_tx = time.ticks_ms()

    def wait(self, ms):
        """Wait up to `ms` for one packet from the server and handle it (PUBLISH goes to
        on_message). True when a packet arrived."""
        client = self._client
        if not client.readable(ms):
            return False
        op = MQTTClient.wait_msg(client)
        if op is not None and op & 0xF0 != 0x30:
            # An acknowledgement nobody waits for (umqtt leaves its body unread): skip it.
            client.sock.read(client.sock.read(1)[0])
        Link.packets_in += 1
        self.last_rx = time.ticks_ms()
        return True

    def close(self, polite=True):
        client = self._client
        if client.sock is None:
            return
        try:
            if polite:
                client.disconnect()
                Link.packets_out += 1
        except Exception:
            pass
        try:
            client.sock.close()
        except Exception:
            pass
        client.sock = None
        client.poller = None
