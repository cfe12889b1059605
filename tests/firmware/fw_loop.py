"""The device loop (firmware/iotc/app.py and its stage modules) on CPython: a fake world of
Wi-Fi (`network`), NTP (`ntptime`), TLS (`tls`), watchdog (`machine.WDT`), a millisecond clock
(`time.ticks_ms` and friends, `time.time`) and a scripted DPS and hub behind a fake `Link`. Sleeps
move the fake clock, so hours of backoff pass in milliseconds. Every decision the device takes is
recorded as a table edge (stage, outcome, next stage)."""

import base64
import errno
import gc
import importlib
import json
import sys
import time
import types
from pathlib import Path

import pytest

EPOCH = 1_800_000_000  # a set clock (2027)
UNSET = 1_000  # a clock that was never set (1970)
HUB = "hub.test"


class MQTTException(Exception):
    pass


class World:
    """Everything outside the firmware, as the test scripts it."""

    def __init__(self):
        self.ms = 0
        self.unix = EPOCH
        self.ap = True  # the access point accepts a join
        self.wifi = False  # the station is connected
        self.ntp = True  # NTP servers answer
        self.on_ntp = None  # hook run when NTP answers
        self.dps = []  # what each DPS connection meets: "ok", ("connack", n), ("oserror", n), ("fault",)
        self.answers = []  # DPS answers to a registration: (status, body dict)
        self.hub = []  # what each hub connection meets, as for dps
        self.drop = None  # ("oserror", n) or ("fault",): the next wait of an online link raises it
        self.sleep_fault = None  # a stage in which the next sleep raises ValueError
        self.time_fault = False  # the next time.time() raises ValueError
        self.wdt = []  # watchdog timeouts (ms) set
        self.feeds = 0
        self.connects = []  # (host, clean_session)
        self.published = []  # (host, topic, payload, qos)
        self.device = None

    # the clock
    def ticks_ms(self):
        return self.ms

    def sleep_ms(self, ms):
        device = self.device
        if self.sleep_fault is not None and device is not None and device.stage == self.sleep_fault:
            self.sleep_fault = None
            raise ValueError("injected fault while sleeping")
        self.ms += max(int(ms), 0)
        self.unix += max(int(ms), 0) / 1000

    def time(self):
        if self.time_fault:
            self.time_fault = False
            raise ValueError("injected fault reading the clock")
        return self.unix

    def outcome(self, queue):
        behaviour = queue.pop(0) if queue else "ok"
        if behaviour == "ok":
            return
        if behaviour[0] == "connack":
            raise MQTTException(behaviour[1])
        if behaviour[0] == "oserror":
            raise OSError(behaviour[1])
        raise ValueError("injected fault of the firmware")


def ticks_add(ticks, delta):
    return ticks + delta


def ticks_diff(a, b):
    return a - b


class FakeLink:
    """iotc.link.Link's interface, against the World's scripted DPS and hub."""

    world: World = None

    def __init__(self, host, port, client_id, user, password, ctx, on_message, keepalive, timeout_s):
        self.host = host
        self.on_message = on_message
        self.inbox = []
        self.open = False
        self.last_rx = self.last_tx = self.world.ms

    def connect(self, clean_session, timeout_s):
        world = self.world
        world.connects.append((self.host, clean_session))
        world.outcome(world.hub if self.host == HUB else world.dps)
        self.open = True
        return 0

    def subscribe(self, topic, qos=1):
        self.last_rx = self.last_tx = self.world.ms

    def publish(self, topic, payload, qos=0):
        world = self.world
        world.published.append((self.host, topic, payload, qos))
        self.last_tx = world.ms
        if topic.startswith("$dps/registrations/"):
            rid = topic.split("$rid=")[1].split("&")[0]
            status, body = world.answers.pop(0) if world.answers else (200, assigned())
            self.inbox.append(
                (f"$dps/registrations/res/{status}/?$rid={rid}".encode(), json.dumps(body).encode())
            )

    def ping(self):
        self.last_rx = self.last_tx = self.world.ms

    def wait(self, ms):
        world = self.world
        if self.host == HUB and world.drop is not None:
            drop, world.drop = world.drop, None
            world.outcome([drop])
        if self.inbox:
            topic, body = self.inbox.pop(0)
            self.on_message(topic, body)
            self.last_rx = world.ms
            return True
        world.sleep_ms(ms)
        return False

    def close(self, polite=True):
        self.open = False


def assigned(hub=HUB, device_id="dev-1"):
    return {
        "operationId": "op",
        "status": "assigned",
        "registrationState": {"assignedHub": hub, "deviceId": device_id, "status": "assigned"},
    }


class WLAN:
    world: World = None

    def __init__(self, interface):
        pass

    def active(self, on=None):
        return True

    def isconnected(self):
        return self.world.wifi

    def connect(self, ssid, password):
        if self.world.ap:
            self.world.wifi = True

    def disconnect(self):
        self.world.wifi = False

    def status(self, *args):
        return 201

    def ifconfig(self):
        return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")


class WDT:
    world: World = None

    def __init__(self, timeout):
        self.world.wdt.append(timeout)

    def feed(self):
        self.world.feeds += 1


class SSLContext:
    verify_mode = None

    def __init__(self, protocol):
        pass

    def load_verify_locations(self, cadata):
        pass


def install(monkeypatch, world: World) -> None:
    """The fake platform modules and clock, and a fresh import of the firmware's I/O modules."""
    for cls in (FakeLink, WLAN, WDT):
        monkeypatch.setattr(cls, "world", world)
    umqtt = types.ModuleType("umqtt")
    simple = types.ModuleType("umqtt.simple")
    simple.MQTTClient = object
    simple.MQTTException = MQTTException
    network = types.ModuleType("network")
    network.STA_IF = 0
    network.WLAN = WLAN
    ntptime = types.ModuleType("ntptime")
    ntptime.host = None

    def settime():
        if not world.ntp:
            raise OSError(errno.ETIMEDOUT)
        world.unix = EPOCH + world.ms / 1000
        if world.on_ntp is not None:
            world.on_ntp()

    ntptime.settime = settime
    machine = types.ModuleType("machine")
    machine.WDT = WDT
    tls = types.ModuleType("tls")
    tls.SSLContext = SSLContext
    tls.PROTOCOL_TLS_CLIENT = 0
    tls.CERT_REQUIRED = 2
    modules = {
        "umqtt": umqtt,
        "umqtt.simple": simple,
        "network": network,
        "ntptime": ntptime,
        "machine": machine,
        "tls": tls,
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(time, "ticks_ms", world.ticks_ms, raising=False)
    monkeypatch.setattr(time, "ticks_add", ticks_add, raising=False)
    monkeypatch.setattr(time, "ticks_diff", ticks_diff, raising=False)
    monkeypatch.setattr(time, "sleep_ms", world.sleep_ms, raising=False)
    monkeypatch.setattr(time, "time", world.time)
    monkeypatch.setattr(gc, "mem_free", lambda: 40_000, raising=False)
    import iotc

    monkeypatch.setattr(iotc, "_dog", None)
    for name in [name for name in sys.modules if name.startswith("iotc.")]:
        monkeypatch.delitem(sys.modules, name)
        monkeypatch.delattr(iotc, name[5:], raising=False)
    link = importlib.import_module("iotc.link")
    monkeypatch.setattr(link, "Link", FakeLink)


def provision(root: Path, options=None, cached: bool = False) -> Path:
    """An identity folder as `iotcprov provision` writes it (SAS), and optionally a cached
    assignment for it."""
    ident = root / "id-00000001"
    ident.mkdir(parents=True)
    (ident / "root-0.der").write_bytes(b"\x30\x82fake")
    (ident / "device.key").write_text(base64.b64encode(bytes(range(32))).decode() + "\n")
    doc = {
        "format": 1,
        "id_scope": "0ne00ABCDEF",
        "device_id": "dev-1",
        "auth": "sas",
        "dps_host": "dps.test",
        "model_id": None,
        "fingerprint": "f" * 16,
        "trust": ["root-0.der"],
        "key": "device.key",
        "options": {"jitter_max": 0, "watchdog": 60, **(options or {})},
    }
    (ident / "identity.json").write_text(json.dumps(doc))
    (root / "active").write_text("id-00000001\n")
    (root / "wifi.json").write_text(json.dumps({"ssid": "lab", "password": "not-a-secret"}))
    if cached:
        key = "|".join(("f" * 16, "0ne00ABCDEF", "dev-1", "dps.test", "id-00000001"))
        (root / "assignment.json").write_text(
            json.dumps({"format": 1, "hub": HUB, "device_id": "dev-1", "identity": key})
        )
    return root


class Rig:
    """A device on the fake world, driven step by step as Device.run() drives it, with every
    decision recorded."""

    def __init__(self, monkeypatch, root: Path, world: World):
        self.world = world
        install(monkeypatch, world)
        from iotc import app

        self.edges = []
        rig = self
        decide = app.Device.decide

        def recorded(device, outcome, *args):
            before = device.stage or "idle"
            decide(device, outcome, *args)
            rig.edges.append((before, outcome, device.stage or "idle"))

        monkeypatch.setattr(app.Device, "decide", recorded)
        self.device = app.Device(str(root), info=False)
        world.device = self.device
        self.faults = 0

    def start(self) -> None:
        assert self.device.start()

    def until(self, done, steps: int = 2000) -> None:
        """Steps (and the run loop's recovery from faults) until done() holds."""
        device = self.device
        for _ in range(steps):
            if done():
                return
            try:
                device.step()
            except Exception as e:  # as Device.run()
                self.faults += 1
                device._recover(e)
        pytest.fail(f"not done after {steps} steps; stage={device.stage}; edges={self.edges[-8:]}")

    def until_stage(self, stage, steps: int = 2000) -> None:
        self.until(lambda: self.device.stage == stage, steps)

    def until_edge(self, edge, steps: int = 2000) -> None:
        self.until(lambda: edge in self.edges, steps)
