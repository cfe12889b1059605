# The wifi and clock stages: join the access point, then set the clock by NTP (tokens and
# certificate dates need it). Loaded for these stages only.

import time

from iotc import clock, feed, status

# Station statuses that end a join attempt (ESP32 names; those a port lacks are skipped).
_GIVE_UP = ("STAT_NO_AP_FOUND", "STAT_WRONG_PASSWORD", "STAT_ASSOC_FAIL", "STAT_HANDSHAKE_TIMEOUT")


def join(wifi, timeout_s, pause):
    """Join the access point `wifi` = (ssid, password), or wait for a link someone else started
    when it is None. Returns (True, ip) or (False, why). `pause(ms)` is the caller's sleep."""
    try:
        import network
    except ImportError:  # a port with host networking (plain unix port): nothing to join
        return True, None
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if not sta.isconnected():
        if wifi is not None:
            sta.connect(wifi[0], wifi[1])
        give_up = [getattr(network, name) for name in _GIVE_UP if hasattr(network, name)]
        deadline = time.ticks_add(time.ticks_ms(), timeout_s * 1000)
        while not sta.isconnected():
            late = time.ticks_diff(deadline, time.ticks_ms()) <= 0
            if wifi is None and late:
                return False, "no wifi.json and no link"
            state = sta.status()
            if late or state in give_up:
                sta.disconnect()
                return False, "status=%s" % state
            pause(200)
    try:
        return True, sta.ifconfig()[0]
    except Exception:
        return True, None


def sync_clock(servers, rounds):
    """Set the clock by NTP, each server in turn for `rounds` rounds (ntptime makes one 1 s
    attempt per call). Returns the server that answered, or None."""
    try:
        import ntptime
    except ImportError:
        return None
    for _ in range(rounds):
        for host in servers:
            feed()  # each attempt is one DNS lookup and a 1 s wait
            ntptime.host = host
            try:
                ntptime.settime()
                return host
            except Exception:
                pass
    return None


def step(device, stage):
    """One attempt at `stage` ("wifi" or "clock"); the device then goes on or backs off."""
    s = device.settings
    if stage == "wifi":
        ok, info = join(s.wifi, s.wifi_timeout, device.pause)
        if ok:
            status.emit("wifi connected", "ip", info)
            device.go(("clock", 0, None, False))
        else:
            status.emit("wifi failed", reason=info)
            device.go(device.decide("network_failed", "wifi", "wifi"))
        return
    server = sync_clock(s.ntp_servers, s.ntp_attempts)
    now = clock.unix_time()
    if server is None and not clock.clock_is_set(now):
        status.emit("clock failed", "servers", ",".join(s.ntp_servers), reason="no NTP answer")
        device.go(device.decide("network_failed", "clock", "ntp"))
        return
    status.emit("clock set", "source", "ntp" if server else "rtc", "server", server, "unix", now)
    device.go(device.decide("boot", "cached" if s.hub else s.cache_state))
