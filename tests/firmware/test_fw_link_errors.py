"""What the link raises (firmware/iotc/link.py) on CPython, over the virtual board's umqtt.simple
as v1.23 freezes it (1.4.0): a broken or malformed stream and a refused server certificate are
OSError (retried as transport faults); what the firmware's own callback raises stays what it is,
so its bugs are reported as faults instead of being retried as network trouble."""

import importlib
import sys
import time
import types
from pathlib import Path

import pytest

STANDINS = Path(__file__).resolve().parents[2] / "host" / "iotcprov" / "virtual_board" / "standins"


class Stream:
    """A socket whose reads come from `data` (b"" once it is used up, as a closed peer)."""

    def __init__(self, data=b"", wrap_error=None):
        self.data = bytearray(data)
        self.written = bytearray()
        self.wrap_error = wrap_error

    def read(self, n):
        chunk, self.data = bytes(self.data[:n]), self.data[n:]
        return chunk

    def write(self, data, length=None):
        self.written += bytes(data if length is None else data[:length])
        return length or len(data)

    def settimeout(self, seconds):
        pass

    def setblocking(self, flag):
        pass

    def connect(self, address):
        pass

    def close(self):
        pass


class Context:
    def __init__(self, error=None):
        self.error = error

    def wrap_socket(self, sock, server_hostname=None):
        if self.error is not None:
            raise self.error
        return sock


@pytest.fixture
def link(monkeypatch):
    vboard = types.ModuleType("_vboard")
    vboard.config = {"umqtt": (1, 4, 0)}
    monkeypatch.setitem(sys.modules, "_vboard", vboard)
    monkeypatch.setattr(time, "ticks_ms", lambda: 0, raising=False)
    monkeypatch.syspath_prepend(str(STANDINS))
    for name in ("umqtt", "umqtt.simple", "iotc.link"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("iotc.link")
    monkeypatch.setattr(module.Link, "readable", lambda self, ms: True)
    yield module
    for name in ("umqtt", "umqtt.simple", "iotc.link"):
        sys.modules.pop(name, None)


def open_link(module, data, on_message=lambda topic, body: None):
    link = module.Link("hub.test", 8883, "dev", "user", "pw", Context(), on_message, 60, 5)
    link.sock = Stream(data)
    return link


def connect(module, monkeypatch, data, ctx=None):
    stream = Stream(data)
    fake = types.SimpleNamespace(
        socket=lambda: stream, getaddrinfo=lambda host, port: [(0, 0, 0, "", (host, port))]
    )
    monkeypatch.setattr(module, "socket", fake)
    link = module.Link("hub.test", 8883, "dev", "user", "pw", ctx or Context(), lambda t, b: None, 60, 5)
    return link.connect(False, 5)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xd0", b"\xd0\x01", b"\x34\x05\x00\x01t\x00\x01"],
    ids=["closed", "pingresp-cut", "pingresp-malformed", "qos2-publish"],
)
def test_a_broken_or_odd_stream_is_an_oserror(link, data):
    with pytest.raises(OSError):
        open_link(link, data).wait(100)


def test_a_malformed_puback_is_an_oserror(link):
    with pytest.raises(OSError):
        open_link(link, b"\x40\x03\x00\x01\x00").publish("t", "x", qos=1)


def test_the_callbacks_own_errors_are_not_transport_errors(link):
    def on_message(topic, body):
        raise ValueError("a bug of ours")

    publish = b"\x30\x04\x00\x01tx"
    with pytest.raises(ValueError, match="a bug of ours"):
        open_link(link, publish, on_message).wait(100)
    with pytest.raises(IndexError):
        open_link(link, publish, lambda t, b: [][0]).wait(100)


def test_a_publish_reaches_the_callback(link):
    got = []
    assert open_link(link, b"\x30\x04\x00\x01tx", lambda t, b: got.append((t, b))).wait(100)
    assert got == [(b"t", b"x")]


@pytest.mark.parametrize("data", [b"", b"\x20", b"\x21\x02\x00\x00"], ids=["closed", "cut", "malformed"])
def test_connack_trouble_is_an_oserror(link, monkeypatch, data):
    with pytest.raises(OSError):
        connect(link, monkeypatch, data)


def test_a_refused_connack_is_an_mqtt_exception(link, monkeypatch):
    with pytest.raises(link.MQTTException):
        connect(link, monkeypatch, b"\x20\x02\x00\x05")
    assert connect(link, monkeypatch, b"\x20\x02\x01\x00") == 1


def test_a_refused_server_certificate_is_an_oserror(link, monkeypatch):
    refused = ValueError("MBEDTLS_ERR_X509_CERT_VERIFY_FAILED\nThe certificate is not correctly signed")
    with pytest.raises(OSError) as caught:
        connect(link, monkeypatch, b"", Context(refused))
    assert link.describe(caught.value).startswith("OSError TLS MBEDTLS_ERR_X509_CERT_VERIFY_FAILED")
