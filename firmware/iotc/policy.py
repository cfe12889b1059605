# What the device does next after each outcome: the decisions of the connection state machine,
# kept free of I/O so they can be tested on CPython (protocol spec section 5; modelled on
# azure-sdk-for-c's MQTT state machine: retry transient errors with backoff, never loop on
# credential errors, go back to DPS when the hub keeps failing or refuses the device).

from iotc.retry import REFUSED, RETRY, classify_connack, classify_status, retry_ms

WIFI = "wifi"
CLOCK = "clock"
DPS = "dps"
HUB = "hub"
ONLINE = "online"
STOPPED = "stopped"

STABLE_MS = 60000  # a session that lasted this long resets the backoff when it drops


class Decision:
    """Go to `stage` after `delay_ms`. `reprovision` = drop the cached assignment first."""

    def __init__(self, stage, delay_ms=0, reason=None, reprovision=False):
        self.stage = stage
        self.delay_ms = delay_ms
        self.reason = reason
        self.reprovision = reprovision


class Policy:
    """Counts consecutive failures; `random16()` returns 0..65535 for the jitter."""

    def __init__(self, options, random16):
        self.options = options
        self._random16 = random16
        self.attempt = 0  # consecutive failures on the way to a stable hub session
        self.hub_failures = 0  # consecutive failed hub connections since the last success
        self.fresh_assignment = False  # the hub in use came from DPS during this run

    def _retry(self, stage, reason, retry_after=None, reprovision=False):
        delay = retry_ms(self.attempt, self.options, self._random16(), retry_after)
        self.attempt += 1
        return Decision(stage, delay, reason, reprovision)

    def _stop(self, reason):
        return Decision(STOPPED, self.options.terminal_wait * 1000, reason)

    def boot(self, cache_state):
        """After Wi-Fi and clock: the hub straight away when the cache holds an assignment
        ("cached"), else DPS; a cache made for another identity is dropped first."""
        if cache_state == "cached":
            return Decision(HUB)
        return Decision(DPS, 0, cache_state, reprovision=cache_state == "identity-changed")

    def network_failed(self, stage, reason):
        """Wi-Fi join or clock sync failed: try the same stage again later."""
        return self._retry(stage, reason)

    def dps_answer(self, kind, status, retry_after=None):
        """A final DPS answer (dps.Answer's kind and status; never 'assigning': polling is part
        of the registration)."""
        if kind == "assigned":
            self.fresh_assignment = True
            self.hub_failures = 0
            return Decision(HUB)
        if kind in ("failed", "disabled"):
            return self._stop("registration " + kind)
        if classify_status(status) == RETRY:
            return self._retry(DPS, "status=%d" % status, retry_after)
        return self._stop("status=%d" % status)

    def dps_refused(self, code):
        """DPS refused the CONNECT with this CONNACK code."""
        if classify_connack(code) == RETRY:
            return self._retry(DPS, "connack=%d" % code)
        return self._stop("connack=%d" % code)

    def dps_failed(self, reason):
        """Transport trouble during registration (TLS, socket, timeout): transient."""
        return self._retry(DPS, reason)

    def hub_connected(self):
        self.hub_failures = 0
        self.fresh_assignment = False

    def hub_refused(self, code):
        """The hub refused the CONNECT. Credentials refused with a cached assignment: DPS again
        (the device may have moved or its registration changed); refused right after a fresh
        registration: nothing will change by retrying, so stop and report."""
        verdict = classify_connack(code)
        if verdict == RETRY:
            return self.hub_failed("connack=%d" % code)
        if verdict == REFUSED and not self.fresh_assignment:
            return self._retry(DPS, "hub-refused", reprovision=True)
        return self._stop("hub refused connack=%d" % code)

    def hub_failed(self, reason):
        """A hub connection attempt failed in transit; after N in a row, DPS again (the C SDK's
        MAX_HUB_RETRY): the hub may have changed."""
        self.hub_failures += 1
        if self.hub_failures >= self.options.hub_failures_before_dps:
            self.hub_failures = 0
            return self._retry(DPS, "hub-failures", reprovision=True)
        return self._retry(HUB, reason)

    def hub_lost(self, lasted_ms, reason):
        """An established session dropped after `lasted_ms`. A session that had been stable
        starts the backoff afresh; one dropped soon after connecting keeps growing it (no
        connect-and-get-kicked hot loop)."""
        if lasted_ms >= STABLE_MS:
            self.attempt = 0
        return self._retry(HUB, reason)

    def resume(self):
        """After a terminal wait: start over at DPS, once."""
        self.attempt = 0
        self.fresh_assignment = False
        return Decision(DPS, 0, "resume", reprovision=True)
