# What the device does next after each outcome: the connection state machine's transition table,
# retry timing and error classification (docs/protocol.md section 5, modelled on azure-sdk-for-c's
# MQTT state machine: retry transient errors with exponential backoff and jitter, never loop on
# credential errors, go back to DPS when the hub keeps failing or refuses the device).
# Pure but for the jitter's randomness (os.urandom, unless the state supplies random16) and one
# look at the network link (state.link_down()): the caller does the waiting and all other I/O.
# What the table remembers between decisions is the caller's `state` (the device's
# app.PolicyState, kept in a resident module since this one is unloaded between decisions).
#
# Verdicts: "retry" (worth another try after a delay), "refused" (credentials refused: never
# retried in a loop), "terminal" (the service says no for good: bad request, not found, ...).
# Every decision is a Decision(stage, delay_ms, reason, reprovision): go to `stage` after
# `delay_ms`; `reprovision` = drop the cached assignment first. Constants are written where they
# are used: every module-level name would stay interned on the board for good (iotc/__init__.py).

from collections import namedtuple

Decision = namedtuple("Decision", ("stage", "delay_ms", "reason", "reprovision"))

# The transition table: "stage outcome next-stage..." a line, "*" for any stage. Every stage change
# of the device is decide(stage, outcome): the outcome's rule below picks one of the stages its line
# lists, and any other is a fault of the firmware. Stages: idle (not started, or stopped for good),
# wifi, clock, dps, hub, online, stopped (waiting out terminal_wait). A rule's dps or hub becomes
# wifi while the network link is down. firmware/README.md draws this table
# (tools/fw_state_diagram.py; a test fails when the drawing is out of date).
TABLE = """
idle start wifi
wifi joined clock
wifi network_failed wifi
clock boot hub dps wifi
clock network_failed clock
dps dps_answer hub dps stopped idle wifi
dps dps_refused dps stopped idle wifi
dps dps_failed dps wifi
dps clock_unset clock
hub hub_connected online
hub hub_refused hub dps stopped idle wifi
hub hub_failed hub dps wifi
hub clock_unset clock
online renew hub wifi
online hub_lost hub wifi
stopped resume dps wifi
wifi fault wifi
clock fault clock
dps fault dps wifi
hub fault hub wifi
online fault hub wifi
stopped fault dps wifi
idle fault idle
* stop idle
"""


def decide(state, options, stage, outcome, *args):
    """The next stage after `outcome` in `stage` (None: idle): the outcome's rule, with dps and hub
    turned into wifi while the link is down. ValueError when the table has no such edge. The
    stage is kept in state.stage for the rule (fault needs it)."""
    state.stage = stage = stage or "idle"
    decision = globals()[outcome](state, options, *args)
    target = decision[0]
    if (target == "dps" or target == "hub") and state.link_down():
        decision = Decision("wifi", decision[1], decision[2], decision[3])  # join the network first
        target = "wifi"
    line = TABLE.find("\n%s %s " % (stage, outcome))
    if line < 0:
        line = TABLE.find("\n* %s " % outcome)
    if line < 0 or target not in TABLE[line : TABLE.find("\n", line + 1)].split()[2:]:
        raise ValueError("no edge %s %s %s" % (stage, outcome, target))
    if target == "hub":  # the hub stage's success, decided now: then the link is open and there
        state.hub_up = decide(state, options, "hub", "hub_connected")  # is no room for this module
    return decision


def classify_status(status):
    """A DPS/hub answer status: 429, 408 and 5xx are transient; other 4xx are final."""
    if status == 429 or status == 408 or status >= 500:
        return "retry"
    if status in (401, 403):
        return "refused"
    return "terminal"


def classify_connack(code):
    """A refused CONNACK return code: 4 (bad user name or password) and 5 (not authorized) are
    credential errors, 3 (server unavailable) is transient, 1 and 2 are our own fault."""
    if code in (4, 5):
        return "refused"
    if code in (1, 2):
        return "terminal"
    return "retry"


def jitter_ms(max_seconds, random16):
    """Spread `random16` (0..65535, from os.urandom) over 0..max_seconds*1000 ms."""
    return random16 * max_seconds * 1000 // 65536


def backoff_ms(attempt, min_seconds, max_seconds, jitter):
    """Exponential backoff: min, 2*min, 4*min, ... capped at max, plus `jitter` ms."""
    step = min_seconds * 1000
    cap = max_seconds * 1000
    while attempt > 0 and step < cap:
        step *= 2
        attempt -= 1
    return min(step, cap) + jitter


def retry_ms(attempt, options, random16, retry_after=None):
    """The wait before the next try: the backoff, or the service's retry-after if longer; jitter
    is added either way so a fleet throttled together does not come back together."""
    jitter = jitter_ms(options.jitter_max, random16)
    delay = backoff_ms(attempt, options.backoff_min, options.backoff_max, jitter)
    if retry_after is not None and retry_after * 1000 + jitter > delay:
        delay = retry_after * 1000 + jitter
    return delay


# A session that lasted this long (ms) resets the backoff when it drops.
STABLE_MS = 60000


def _retry(state, options, stage, reason, retry_after=None, reprovision=False):
    if state.random16 is not None:
        random16 = state.random16()
    else:
        import os

        random16 = int.from_bytes(os.urandom(2), "big")
    delay = retry_ms(state.attempt, options, random16, retry_after)
    state.attempt += 1
    return Decision(stage, delay, reason, reprovision)


def _stop(options, reason):
    """Stop for terminal_wait seconds, or for good (idle) when it is 0."""
    wait = options.terminal_wait * 1000
    return Decision("stopped" if wait else "idle", wait, reason, False)


def start(state, options):
    """The configuration is good: a new start, as after a reset."""
    state.attempt = state.hub_failures = 0
    state.fresh_assignment = False
    return Decision("wifi", 0, None, False)


def joined(state, options):
    """On the network: set the clock next."""
    return Decision("clock", 0, None, False)


def clock_unset(state, options):
    """Nothing can be signed or verified without the time: set the clock first."""
    return Decision("clock", 0, "clock-unset", False)


def boot(state, options, cache_state):
    """After Wi-Fi and clock: the hub straight away when the cache holds an assignment
    ("cached"), else DPS; a cache made for another identity is dropped first."""
    if cache_state == "cached":
        return Decision("hub", 0, None, False)
    return Decision("dps", 0, cache_state, cache_state == "identity-changed")


def network_failed(state, options, stage, reason):
    """Wi-Fi join or clock sync failed (or a fault of ours): try `stage` again later."""
    return _retry(state, options, stage, reason)


def dps_answer(state, options, kind, status, retry_after=None):
    """A final DPS answer (dps.Answer's kind and status; never 'assigning': polling is part of
    the registration)."""
    if kind == "assigned":
        state.fresh_assignment = True
        state.hub_failures = 0
        return Decision("hub", 0, None, False)
    if kind in ("failed", "disabled"):
        return _stop(options, "registration " + kind)
    if classify_status(status) == "retry":
        return _retry(state, options, "dps", "status=%d" % status, retry_after)
    return _stop(options, "status=%d" % status)


def dps_refused(state, options, code):
    """DPS refused the CONNECT with this CONNACK code."""
    if classify_connack(code) == "retry":
        return _retry(state, options, "dps", "connack=%d" % code)
    return _stop(options, "connack=%d" % code)


def dps_failed(state, options, reason):
    """Transport trouble during registration (TLS, socket, timeout): transient."""
    return _retry(state, options, "dps", reason)


def hub_connected(state, options):
    """The hub accepted the session: online. Decided ahead, when the hub stage is entered (see
    decide); what a session changes in the state is applied when it ends (_ended)."""
    return Decision("online", 0, None, False)


def _ended(state):
    """A hub session was up: the failure count starts again, and a later refusal may reprovision."""
    state.hub_failures = 0
    state.fresh_assignment = False


def renew(state, options):
    """The token is about to expire: connect again with a fresh one (MQTT 3.1.1 cannot re-auth)."""
    _ended(state)
    return Decision("hub", 0, None, False)


def hub_refused(state, options, code):
    """The hub refused the CONNECT. Credentials refused with a cached assignment: DPS again (the
    device may have moved or its registration changed); refused right after a fresh
    registration: nothing will change by retrying, so stop and report."""
    verdict = classify_connack(code)
    if verdict == "retry":
        return hub_failed(state, options, "connack=%d" % code)
    if verdict == "refused" and not state.fresh_assignment:
        return _retry(state, options, "dps", "hub-refused", reprovision=True)
    return _stop(options, "hub refused connack=%d" % code)


def hub_failed(state, options, reason):
    """A hub connection attempt failed in transit; after N in a row, DPS again (the C SDK's
    MAX_HUB_RETRY): the hub may have changed."""
    state.hub_failures += 1
    if state.hub_failures >= options.hub_failures_before_dps:
        state.hub_failures = 0
        return _retry(state, options, "dps", "hub-failures", reprovision=True)
    return _retry(state, options, "hub", reason)


def hub_lost(state, options, lasted_ms, reason):
    """An established session dropped after `lasted_ms`. A session that had been stable starts
    the backoff afresh; one dropped soon after connecting keeps growing it (no
    connect-and-get-kicked hot loop)."""
    _ended(state)
    if lasted_ms >= STABLE_MS:
        state.attempt = 0
    return _retry(state, options, "hub", reason)


def resume(state, options):
    """After a terminal wait: start over at DPS, once."""
    state.attempt = 0
    state.fresh_assignment = False
    return Decision("dps", 0, "resume", True)


def fault(state, options, reason):
    """A fault of the firmware (or MemoryError) in `state.stage`: that stage again, later (a
    session from its connect, a terminal wait from DPS)."""
    stage = state.stage or "idle"
    if stage == "online":
        _ended(state)
    stage = "hub" if stage == "online" else "dps" if stage == "stopped" else stage
    return _retry(state, options, stage, reason)


def stop(state, options):
    """The application stopped the device."""
    return Decision("idle", 0, None, False)
