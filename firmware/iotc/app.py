# The device: one small state machine that takes a provisioned board from boot to a live IoT Hub
# session and keeps it there. Stages, each in its own module:
#
#     start         settings.py   read and check the configuration (config.py, sas.py, files.py)
#     wifi, clock   bringup.py    join the access point, set the clock by NTP
#     dps           register.py   register with DPS and cache the assignment (skipped when cached)
#     hub, online   session.py    connect with a fresh token, then serve the session
#
# After every outcome the transition table in policy.py picks the next stage and the delay
# (backoff, re-provisioning, stopping): Device.decide(outcome) is the only way to change stage.
# RAM is scarce on an ESP32 and on the virtual board's limited heap, so a stage's module is
# imported when the stage runs and unloaded when the device moves on: only this file, the link
# and, online, session.py stay resident. So what the stages remember lives here, by owner: the Device
# (its own state and the application's handlers), device.session (SessionRecord: the hub
# session's timers and requests) and device.policy (PolicyState: the transition table's counts).
#
#     from iotc.app import Device
#     device = Device(telemetry=lambda: {"temperature": read_sensor()})
#     device.run()                  # returns only if the configuration is broken, or on stop()
#
# or from your own loop: device.start(), then call device.step() repeatedly and
# device.send_telemetry({...}) whenever you have something to send.
#
# IoT Central features (README "Device features"): device.on_property(name, handler),
# device.on_command(name, handler), device.on_message(handler), device.report({...}); the code
# behind them (central.py, pnp.py) is loaded only when the hub sends something for them.
# Telemetry made while offline waits in a bounded RAM ring (options.buffer_size) and is sent, in
# order and at QoS 1, after reconnecting. The watchdog (options.watchdog) is fed wherever the
# firmware waits.

import gc
import json
import time

import iotc
from iotc import emit, feed, shed, unload, use


def _feature(device, found, payload):
    """The handler of every incoming kind an application feature asked for."""
    from iotc import central

    central.handle(device, found, payload)


class SessionRecord:
    """device.session: what the hub session (session.py, central.py) keeps between steps and
    across its reconnections. Plain attributes, so session.py can be unloaded between sessions."""

    online_since = 0  # uptime at the last hub connection
    renewing = False  # reconnecting to renew the token (quieter status lines)
    renew_at = None  # ticks when the token is renewed; None for X.509
    ping_sent = None  # ticks of the PINGREQ awaiting its answer
    rid = 0  # last twin request id
    twin_rid = None  # the full-twin GET awaiting its answer
    dropped_reported = 0  # the device's `dropped` as last reported in the twin
    next_telemetry = None  # ticks; the schedule starts with the first connection of a boot


class PolicyState:
    """device.policy: what the transition table (policy.py, loaded only for each decision)
    remembers between decisions; policy.decide gets it as `state` and sets it."""

    attempt = 0  # consecutive failures on the way to a stable hub session
    hub_failures = 0  # consecutive failed hub connections since the last success
    fresh_assignment = False  # the hub in use came from DPS during this run
    random16 = None  # callable -> 0..65535 for the jitter (os.urandom when None)
    stage = None  # the stage whose outcome is decided (set by policy.decide)
    hub_up = None  # the decision for hub_connected, made when the hub stage is entered

    def link_down(self):
        """Whether the Wi-Fi station is down (DPS and the hub need it); a port with host
        networking has none to join."""
        try:
            import network
        except ImportError:
            return False
        return not network.WLAN(network.STA_IF).isconnected()


class Device:
    """A board's connection to IoT Central.

    telemetry: None sends the board readings (uptime, free heap, RSSI, temperature) every
    options.telemetry_interval seconds; a callable returning a dict (or None to skip) sends
    that instead; False sends nothing by itself.
    model_id: the DTMI of the application's model, announced when identity.json has none.
    info: report the read-only device information (firmware and MicroPython versions, board,
    MAC) on the first connection of each boot.
    """

    # What a device starts with (class attributes, so an instance holds only what changed). The
    # device keeps its own state and the application's handlers (on_connected, handlers and
    # subscriptions are the application's hooks); what the hub session and the transition table
    # remember between steps is on two small records, device.session and device.policy
    # (SessionRecord and PolicyState above). Each class and object more stays in RAM, so there
    # are only these two, with their defaults as class attributes too.
    # -- the device (app.py): configuration, where it is in the table, the open link, counts
    settings = None  # settings.load() record: identity, options, Wi-Fi, assignment
    tls = None  # the TLS client context, made at start
    link = None  # the open link.Link, if any
    stage = None  # "wifi", "clock", "dps", "hub", "online", "stopped", or None before start / after stop
    uptime_ms = 0
    _stage_module = None
    sent = 0  # telemetry messages sent this run
    dropped = 0  # telemetry messages dropped from a full buffer since boot
    # -- the application's handlers (on_property, on_command, on_message: see __init__ too)
    message_handler = None  # handler(body, properties) for C2D messages
    on_connected = None  # hook: on_connected(device) after each (re)connect

    def __init__(self, root="/iotc-data", telemetry=None, model_id=None, info=True):
        self.root = root
        self.telemetry = telemetry
        self.model_id = model_id
        self.info = info
        self._now = self._wake = time.ticks_ms()
        self.session = SessionRecord()
        self.policy = PolicyState()
        # Hooks for device features (properties, commands, C2D): topics subscribed after each
        # connect, and handlers by incoming.Incoming kind called as handler(device, incoming,
        # payload).
        self.subscriptions = []
        self.handlers = {}
        self.inbox = []  # (incoming, payload) received, handled outside umqtt's wait
        # Application features: writable-property and command handlers; the reported
        # properties not sent yet (a patch) and the acknowledgements in it (for status lines).
        self.properties = {}  # (component, name): handler(value)
        self.commands = {}  # 'name' or 'component*name': handler(payload)
        self.reported = {}
        self.acks = []
        # Offline buffer: (body, properties, component, created) waiting to be sent, oldest first.
        self.buffer = []

    # ---- public API ---------------------------------------------------------------------

    @property
    def connected(self):
        return self.stage == "online"

    def start(self):
        """Read and check the configuration. False, after one `config error` line, when the
        board is not provisioned correctly: the caller then returns to the REPL."""
        gc.collect()  # what loading the firmware left behind: a fragmented heap fails start-up sooner
        try:
            ready = use("settings").prepare(self)
        finally:
            shed(iotc.START)
        if ready:
            self.decide("start")
        return ready

    def run(self):
        """Start (unless started) and keep the device online until stop()."""
        while self.stage is None:
            try:
                if not self.start():
                    return False
            except MemoryError:  # not even start-up fits now: say so, wait, try again
                shed(iotc.START)
                emit("error", "stage", "start", reason="MemoryError; retrying in 10 s")
                self.pause(10000)
        try:
            while self.stage is not None:
                try:
                    self.step()
                except Exception as e:  # a fault of ours must not end the device's service
                    self._recover(e)
        finally:  # stopped, Ctrl-C, or a fault we cannot handle: nobody feeds the watchdog now
            self.close(False)
            iotc.watchdog(0)
        return True

    def step(self):
        """Do the next piece of work, or wait for it (about a second at most)."""
        now = time.ticks_ms()
        self.uptime_ms += time.ticks_diff(now, self._now)  # ticks wrap; their differences do not
        self._now = now
        stage = self.stage
        if stage is None:  # not started, or stopped: nothing to serve until start()
            return
        if stage == "online":  # the session waits for itself (and its start may be days old)
            return self._stage("session").step(self)
        wait = min(time.ticks_diff(self._wake, now), 1000)
        record = self.session
        if self.telemetry is not False and record.next_telemetry is not None:
            if time.ticks_diff(now, record.next_telemetry) >= 0:  # offline: into the buffer
                self.produce()
            wait = min(wait, time.ticks_diff(record.next_telemetry, now))
        if wait > 0:
            self.pause(wait)
        elif stage == "stopped":
            self.decide("resume")
        else:
            if stage == "wifi" or stage == "clock":
                self._stage("bringup").step(self)
            else:
                self._stage("register" if stage == "dps" else "session").step(self)

    def send_telemetry(self, values, properties=None, component=None):
        """Send one JSON object of telemetry (with an optional property bag and component name).
        True when sent now, and acknowledged by the hub when options.telemetry_qos is 1; False
        when it went into the offline buffer instead (sent in order after reconnecting)."""
        if self.settings is None:  # not started
            return False
        body = json.dumps(values)
        if self.stage == "online" and not self.buffer:
            if self._stage("session").send(self, body, properties, component):
                return True
        try:  # outbox stays loaded while offline; shed before the next handshake
            use("outbox").keep(self, body, properties, component)
        except MemoryError:  # not even room for the buffer's code: lost, but counted
            self.dropped += 1
            emit("buffer dropped", "n", self.dropped, reason="MemoryError")
        return False

    def produce(self):
        """One round of the telemetry schedule: the callback's values (or the board readings),
        sent now or buffered."""
        self.session.next_telemetry = time.ticks_add(time.ticks_ms(), self.settings.telemetry_interval * 1000)
        try:
            if self.telemetry:
                values = self.telemetry()
            else:
                values = use("readings").board_readings(self.uptime_ms // 1000)
                unload("readings")
        except Exception as e:  # the application's callback failed: skip this round
            emit("error", "stage", "telemetry", reason="%s %s" % (type(e).__name__, str(e)[:60]))
            return
        if values:
            self.send_telemetry(values)

    def on_property(self, name, handler, component=None):
        """Call handler(value) for each new desired value of writable property `name` (in
        `component`), and acknowledge it as IoT Central expects: None = accepted as sent;
        return (value, ac) or (value, ac, description) to report another value or refuse
        (e.g. ac=400); an exception is acknowledged with ac=500."""
        self.properties[(component, name)] = handler
        self.handlers["twin-response"] = self.handlers["twin-desired"] = _feature

    def on_command(self, name, handler, component=None):
        """Call handler(payload) for command `name` (in `component`); its result is the answer's
        JSON payload with status 200, or return (status, payload). An unknown command is
        answered 404, a handler that raises 500 with the message. Commands queued while the
        device was offline arrive as C2D messages: the same handler runs, but nobody can
        receive its answer."""
        self.commands[component + "*" + name if component else name] = handler
        self.handlers["method"] = self.handlers["c2d"] = _feature

    def on_message(self, handler):
        """Call handler(body, properties) for each cloud-to-device message: body as bytes,
        properties as a dict of strings (offline commands go to their command handler)."""
        self.message_handler = handler
        self.handlers["c2d"] = _feature

    def report(self, properties, component=None):
        """Report read-only properties (a dict; in `component` when given). True when sent now;
        False when kept for the next connection (newer values of a name replace older)."""
        sent = use("outbox").report(self, properties, component)
        if self.stage == "online":  # offline it stays loaded for the buffer
            unload("outbox")
        return sent

    def feed(self):
        """Feed the watchdog: only needed by your own code that keeps the device from its
        waits for longer than options.watchdog."""
        feed()

    def publish(self, topic, payload, qos=0):
        """Publish on the hub session (device features use it for twin and method answers).
        False while offline or when the session broke doing it."""
        if self.stage != "online":
            return False
        return self._stage("session").publish(self, topic, payload, qos)

    def stop(self):
        self.close()
        self.decide("stop")
        iotc.watchdog(0)

    # ---- for the stage modules ----------------------------------------------------------

    def decide(self, outcome, *args):
        """The stage's `outcome` happened: the transition table (policy.decide, loaded just for
        the decision; device.policy keeps its state meanwhile) picks what comes next, and it is
        applied."""
        if outcome == "hub_connected":  # decided by the table as the hub stage began (policy.decide)
            return self.go(self.policy.hub_up)
        decision = use("policy").decide(self.policy, self.settings, self.stage, outcome, *args)
        unload("policy")
        self.go(decision)

    def go(self, decision):
        """Apply a decision of the table (stage, delay_ms, reason, reprovision): the next stage,
        when it may start, and the status lines that explain it."""
        stage, delay_ms, reason, reprovision = decision
        s = self.settings
        if reprovision:  # forget the cached assignment; files is shed before the next handshake
            use("files").forget_assignment(s)
            s.hub = s.assigned_id = None
            s.cache_state = "no-cache"
            if reason != "resume":
                emit("reprovision", reason=reason)
        if stage == "idle":  # stopped for good, or by the application
            if reason:
                emit("stopped", reason=reason)
            self.stage = None
            return
        if stage == "stopped":
            emit("stopped", "retry_in", delay_ms // 1000, reason=reason)
        elif delay_ms:
            emit(
                "backoff", "stage", stage, "delay", "%.1f" % (delay_ms / 1000),
                "attempt", self.policy.attempt, reason=reason,
            )  # fmt: skip
        self.stage = stage
        self._wake = time.ticks_add(time.ticks_ms(), delay_ms)

    def password(self, hub=None):
        """(password, token expiry) for the next CONNECT, to DPS or to the hub `hub`: a fresh SAS
        token, or ("", None) for X.509. None while the clock is unset, when nothing can be signed
        or verified: the device goes back to the clock stage. Everything but the open stage is
        shed after it, before the TLS handshake, the peak of RAM use."""
        try:
            secret = use("files").password(self.settings, hub)
        finally:
            shed(("files", "sas"))
        if secret is None:
            self.close(False)
            self.decide("clock_unset")
        return secret

    def close(self, polite=True):
        """Close the open link, if any (one TLS connection at a time)."""
        link = self.link
        self.link = None
        if link is not None:
            link.close(polite)

    def pause(self, ms):
        """Every sleep of the firmware goes through here: the watchdog is fed each second."""
        while ms > 0:
            feed()
            time.sleep_ms(min(ms, 1000))
            ms -= 1000

    # ---- internals ----------------------------------------------------------------------

    def _stage(self, name):
        """The module of stage `name`; the previous stage's module (and what it loaded) is
        unloaded first, so only one stage's code is in RAM at a time."""
        module = self._stage_module
        if module is not None and module.__name__ == "iotc." + name:
            return module
        self._stage_module = module = None
        shed(iotc.STAGE)
        self._stage_module = module = use(name)
        return module

    def _recover(self, error):
        """After a fault of ours (or MemoryError): report it, then retry the stage later."""
        self.close(False)
        stage = self.stage
        emit("error", "stage", stage, reason="%s %s" % (type(error).__name__, str(error)[:60]))
        self._stage_module = None  # drop whatever stage code is loaded: the retry reloads it
        shed(iotc.STAGE, ("policy",))
        try:
            self.decide("fault", "error")
        except MemoryError:  # no room for the table: its fault edge, by hand, after 10 s
            stage = "hub" if stage == "online" else "dps" if stage == "stopped" else stage
            self.go((stage, 10000, "error", False))


def main(root="/iotc-data"):
    """What /main.py runs: the default device, sending board readings."""
    Device(root).run()
