# The device: one small state machine that takes a provisioned board from boot to a live IoT Hub
# session and keeps it there. Stages: wifi -> clock -> dps (skipped when the assignment is
# cached) -> hub -> online. Every failure goes through policy.Policy, which picks the next stage
# and the delay; protocol details live in dps.py / hub.py, timing rules in retry.py.
#
#     from iotc.app import Device
#     device = Device(telemetry=lambda: {"temperature": read_sensor()})
#     device.run()                  # returns only if the configuration is broken, or on stop()
#
# or drive it from your own loop: device.start(), then call device.step() repeatedly and
# device.send_telemetry({...}) whenever device.connected.

import errno
import gc
import json
import os
import time

from iotc import VERSION, ConfigError, clock, files, hub, net, status, unload
from iotc.link import Link, MQTTException, tls_context
from iotc.policy import CLOCK, DPS, HUB, ONLINE, STOPPED, WIFI, Decision, Policy

TRANSPORT_ERRORS = (OSError, IndexError, ValueError, AssertionError)  # how umqtt fails


def _random16():
    return int.from_bytes(os.urandom(2), "big")


def _describe(error):
    """A short, secret-free description of a transport error for reason=."""
    if isinstance(error, OSError) and error.args:
        return "OSError %s" % error.args[0]
    return type(error).__name__


class Device:
    """A board's connection to IoT Central.

    telemetry: None sends the board readings (uptime, free heap, RSSI, temperature) every
    options.telemetry_interval seconds; a callable returning a dict (or None to skip) sends
    that instead; False sends nothing by itself.
    """

    def __init__(self, root=files.ROOT, telemetry=None):
        self.root = root
        self.settings = None  # files.load() record: identity, options, Wi-Fi, cached assignment
        self.stage = None
        self.sent = 0  # telemetry messages sent this run
        self._telemetry = telemetry
        self._policy = None
        self._link = None
        self._renewing = False
        self._now = time.ticks_ms()
        self._uptime_ms = 0
        self._wake = self._now
        self._online_since = self._now
        self._renew_at = None
        self._next_telemetry = self._now
        self._ping_sent = None
        # Hooks for device features (properties, commands, C2D): topics subscribed after each
        # connect, handlers by hub.Incoming kind called as handler(device, incoming, payload),
        # and on_connected(device) called after each (re)connect.
        self.subscriptions = []
        self.handlers = {}
        self.on_connected = None

    # ---- public API ---------------------------------------------------------------------

    @property
    def connected(self):
        return self.stage == ONLINE

    def start(self):
        """Read and check the configuration. False, after one `config error` line, when the
        board is not provisioned correctly: the caller then returns to the REPL."""
        try:
            s = files.load(self.root)
        except ConfigError as e:
            status.emit("config error", "file", e.file, reason=e.args[0])
            self.stage = None
            return False
        self.settings = s
        self._policy = Policy(s, _random16)
        gc.collect()
        status.emit(
            "boot", "version", VERSION, "device", s.device_id, "auth", s.auth, "identity", s.folder,
            "cache", s.cache_state, "free", gc.mem_free(),
        )  # fmt: skip
        self._go(Decision(WIFI))
        return True

    def run(self):
        """Start (unless started) and keep the device online until stop()."""
        if self.stage is None and not self.start():
            return False
        try:
            while self.stage is not None:
                try:
                    self.step()
                except Exception as e:  # a fault of ours must not end the device's service
                    self._recover(e)
        finally:
            self._close(False)
        return True

    def step(self):
        """Do the next piece of work, or wait for it (about a second at most)."""
        self._tick()
        wait = time.ticks_diff(self._wake, self._now)
        if wait > 0:
            self._idle(min(wait, 1000))
            return
        stage = self.stage
        try:
            if stage == WIFI:
                self._join_wifi()
            elif stage == CLOCK:
                self._set_clock()
            elif stage == DPS:
                self._register()
            elif stage == HUB:
                self._connect_hub()
            elif stage == ONLINE:
                self._serve()
            elif stage == STOPPED:
                self._go(self._policy.resume())
        except clock.ClockNotSet:
            self._close(False)
            self._go(Decision(CLOCK, 0, "clock-unset"))

    def send_telemetry(self, values, properties=None, component=None):
        """Send one JSON object of telemetry now. True when sent (and acknowledged by the hub
        when options.telemetry_qos is 1); False while offline or when sending failed."""
        if self.stage != ONLINE:
            return False
        s = self.settings
        body = json.dumps(values)
        try:
            self._link.publish(hub.telemetry_topic(s.assigned_id, properties, component), body, s.telemetry_qos)
        except TRANSPORT_ERRORS as e:
            self._lost(_describe(e))
            return False
        self.sent += 1
        status.emit("telemetry sent", "n", self.sent, "bytes", len(body), "qos", s.telemetry_qos)
        return True

    def publish(self, topic, payload, qos=0):
        """Publish on the hub session (for device features: twin, method responses)."""
        if self.stage != ONLINE:
            return False
        try:
            self._link.publish(topic, payload, qos)
        except TRANSPORT_ERRORS as e:
            self._lost(_describe(e))
            return False
        return True

    def stop(self):
        self._close()
        self.stage = None

    # ---- stages -------------------------------------------------------------------------

    def _join_wifi(self):
        ok, info = net.join(self.settings.wifi, self.settings.wifi_timeout, self._pause)
        if ok:
            status.emit("wifi connected", "ip", info)
            self._go(Decision(CLOCK))
        else:
            status.emit("wifi failed", reason=info)
            self._go(self._policy.network_failed(WIFI, "wifi"))

    def _set_clock(self):
        s = self.settings
        server = net.sync_clock(s.ntp_servers, s.ntp_attempts)
        now = clock.unix_time()
        if server is None and not clock.clock_is_set(now):
            status.emit("clock failed", "servers", ",".join(s.ntp_servers), reason="no NTP answer")
            self._go(self._policy.network_failed(CLOCK, "ntp"))
            return
        status.emit("clock set", "source", "ntp" if server else "rtc", "server", server, "unix", now)
        self._go(self._policy.boot("cached" if s.hub else s.cache_state))

    def _password(self, hub_host=None):
        """The CONNECT password for DPS, or for `hub_host`, and the token's expiry. The token
        goes straight to the client; it is never kept or printed. X.509: empty password."""
        s = self.settings
        if s.auth != "sas":
            if not clock.clock_is_set():
                raise clock.ClockNotSet("clock not set")  # certificate dates cannot be checked
            return "", None
        from iotc import sas

        expiry = clock.expiry_in(s.token_ttl)
        if hub_host is None:
            return sas.dps_token(files.device_key(s), s.id_scope, s.device_id, expiry), expiry
        return sas.hub_token(files.device_key(s), hub_host, s.assigned_id, expiry), expiry

    def _tls(self):
        """A fresh TLS context: the identity's roots, plus its client certificate for X.509."""
        s = self.settings
        if s.auth == "sas":
            return tls_context(files.roots(s))
        cert, key = files.client_cert(s)
        return tls_context(files.roots(s), cert, key)

    def _register(self):
        password = self._password()[0]
        gc.collect()
        from iotc import register

        outcome, detail = register.run(self.settings, password, self._tls())
        del password
        unload("register")
        unload("dps")
        gc.collect()
        if outcome == "answer":
            if detail.kind == "assigned":
                self.settings.hub, self.settings.assigned_id = detail.hub, detail.device_id
            self._go(self._policy.dps_answer(detail.kind, detail.status, detail.retry_after))
        elif outcome == "refused":
            self._go(self._policy.dps_refused(detail))
        else:
            self._go(self._policy.dps_failed(detail))

    def _connect_hub(self):
        s = self.settings
        renewing = self._renewing
        self._renewing = False
        if not renewing:
            status.emit("hub connecting", "host", s.hub, "device", s.assigned_id)
        password, expiry = self._password(s.hub)
        gc.collect()
        link = Link(
            s.hub, s.hub_port, s.assigned_id, hub.username(s.hub, s.assigned_id, s.model_id), password,
            self._tls(), self._receive, s.keepalive, s.response_timeout,
        )  # fmt: skip
        del password
        try:
            link.connect(False, s.connect_timeout)  # keep the session: queued C2D survives
            self._link = link
            for topic in self.subscriptions:
                link.subscribe(topic, 1)
        except MQTTException as e:
            self._close(False)
            link.close(False)
            code = e.args[0] if e.args else 0
            status.emit("hub failed", "host", s.hub, "connack", code, reason="connection refused")
            self._go(self._policy.hub_refused(code))
            return
        except TRANSPORT_ERRORS as e:
            self._close(False)
            link.close(False)
            status.emit("hub failed", "host", s.hub, reason=_describe(e))
            self._go(self._policy.hub_failed(_describe(e)))
            return
        now = time.ticks_ms()
        self._policy.hub_connected()
        self._online_since = now
        self._ping_sent = None
        self._renew_at = None if expiry is None else time.ticks_add(now, s.renew_after * 1000)
        if renewing:
            status.emit("token renewed", "expires", expiry, "ttl", s.token_ttl)
        else:
            status.emit("hub connected", "host", s.hub, "device", s.assigned_id, "expires", expiry)
            self._next_telemetry = now
        self._go(Decision(ONLINE))
        if self.on_connected is not None:
            self.on_connected(self)

    def _serve(self):
        """Online: renew the session before the token expires, keep it alive, send telemetry
        when due, and wait for what the hub sends until the next of these is due."""
        link = self._link
        s = self.settings
        now = self._now
        try:
            if self._renew_at is not None and time.ticks_diff(now, self._renew_at) >= 0:
                self._close()  # MQTT 3.1.1 has no re-auth: reconnect with a fresh token
                self._renewing = True
                self._go(Decision(HUB))
                return
            if self._ping_sent is not None and time.ticks_diff(link.last_rx, self._ping_sent) < 0:
                if time.ticks_diff(now, self._ping_sent) > s.response_timeout * 1000:
                    raise OSError(errno.ETIMEDOUT)  # no PINGRESP: the link is half-open
            elif time.ticks_diff(now, _quiet_since(link)) >= s.keepalive * 500:
                link.ping()
                self._ping_sent = link.last_tx
            if self._telemetry is not False and time.ticks_diff(now, self._next_telemetry) >= 0:
                self._next_telemetry = time.ticks_add(now, s.telemetry_interval * 1000)
                values = self._telemetry() if self._telemetry else self._readings()
                if values and not self.send_telemetry(values):
                    return
            link.wait(self._until_due())
        except TRANSPORT_ERRORS as e:
            self._lost(_describe(e))

    def _until_due(self):
        """Milliseconds until the next online chore (at most 1000)."""
        now = time.ticks_ms()
        wait = time.ticks_diff(time.ticks_add(_quiet_since(self._link), self.settings.keepalive * 500), now)
        if self._renew_at is not None:
            wait = min(wait, time.ticks_diff(self._renew_at, now))
        if self._telemetry is not False:
            wait = min(wait, time.ticks_diff(self._next_telemetry, now))
        return max(min(wait, 1000), 0)

    def _readings(self):
        from iotc.readings import board_readings

        return board_readings(self._uptime_ms // 1000)

    # ---- plumbing -----------------------------------------------------------------------

    def _receive(self, topic, payload):
        """umqtt's callback for every PUBLISH of the hub."""
        if not isinstance(topic, str):
            topic = topic.decode()
        incoming = hub.parse_topic(self.settings.assigned_id, topic)
        handler = self.handlers.get(incoming.kind) if incoming else None
        if handler is not None:
            handler(self, incoming, payload)

    def _lost(self, reason):
        self._close(False)
        status.emit("hub disconnected", "host", self.settings.hub, reason=reason)
        lasted = time.ticks_diff(time.ticks_ms(), self._online_since)
        self._go(self._policy.hub_lost(lasted, reason))

    def _go(self, decision):
        """Apply a policy decision: the next stage, its delay, and the lines that explain it."""
        s = self.settings
        stage = decision.stage
        if decision.reprovision:
            files.forget_assignment(s)
            s.hub = s.assigned_id = None
            s.cache_state = "no-cache"
            if decision.reason != "resume":
                status.emit("reprovision", reason=decision.reason)
        if stage == HUB and s.hub is None:
            stage = DPS
        if stage in (DPS, HUB) and not net.is_up():
            stage = WIFI
        if stage == STOPPED:
            wait_s = decision.delay_ms // 1000
            status.emit("stopped", "retry_in", wait_s or None, reason=decision.reason)
            if not wait_s:
                self.stage = None
                return
        elif decision.delay_ms:
            status.emit(
                "backoff", "stage", stage, "delay", "%.1f" % (decision.delay_ms / 1000),
                "attempt", self._policy.attempt, reason=decision.reason,
            )  # fmt: skip
        self.stage = stage
        self._wake = time.ticks_add(time.ticks_ms(), decision.delay_ms)

    def _recover(self, error):
        self._close(False)
        stage = self.stage
        status.emit("error", "stage", stage, reason="%s %s" % (type(error).__name__, str(error)[:60]))
        self._go(self._policy.network_failed({ONLINE: HUB, STOPPED: DPS}.get(stage, stage), "error"))

    def _close(self, polite=True):
        link = self._link
        self._link = None
        if link is not None:
            link.close(polite)

    def _tick(self):
        """Advance the uptime clock (ticks wrap; their differences do not)."""
        now = time.ticks_ms()
        self._uptime_ms += time.ticks_diff(now, self._now)
        self._now = now

    def _idle(self, ms):
        if self._link is not None and self.stage == ONLINE:
            try:
                self._link.wait(ms)
            except TRANSPORT_ERRORS as e:
                self._lost(_describe(e))
        else:
            self._pause(ms)

    def _pause(self, ms):
        """Every sleep of the firmware goes through here (a watchdog is fed here)."""
        time.sleep_ms(ms)


def _quiet_since(link):
    """The older of last send and last receipt: a ping is due when either is old."""
    return link.last_tx if time.ticks_diff(link.last_rx, link.last_tx) > 0 else link.last_rx


def main(root=files.ROOT):
    """What /main.py runs: the default device, sending board readings."""
    Device(root).run()
