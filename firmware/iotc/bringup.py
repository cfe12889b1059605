# The wifi and clock stages: join the access point, then set the clock by NTP (tokens and
# certificate dates need it). Loaded for these stages only.

import time

from iotc import clock, emit, feed


def join(device):
    """Join the access point of the device's settings.wifi = (ssid, password), or wait for a link
    someone else started when it is None. Returns (True, ip) or (False, why)."""
    wifi = device.settings.wifi
    try:
        import network
    except ImportError:  # a port with host networking (plain unix port): nothing to join
        return True, None
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if not sta.isconnected():
        if wifi is not None:
            sta.connect(wifi[0], wifi[1])
        # No status ends the join before wifi_timeout: an ESP32 reports the last disconnect
        # reason (STAT_NO_AP_FOUND, a wrong password) while its driver still retries, and one
        # missed scan is often followed by a join.
        deadline = time.ticks_add(time.ticks_ms(), device.settings.wifi_timeout * 1000)
        while not sta.isconnected():
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                if wifi is None:
                    return False, "no wifi.json and no link"
                state = sta.status()
                sta.disconnect()
                return False, "status=%s" % state
            device.pause(200)
    try:
        return True, sta.ifconfig()[0]
    except Exception:
        return True, None


def step(device):
    """One attempt at the device's stage ("wifi" or "clock"); it then goes on or backs off."""
    s = device.settings
    if device.stage == "wifi":
        ok, info = join(device)
        if ok:
            emit("wifi connected", "ip", info)
            device.decide("joined")
        else:
            emit("wifi failed", reason=info)
            device.decide("network_failed", "wifi", "wifi")
        return
    # NTP, each server in turn for ntp_attempts rounds (ntptime makes one 1 s attempt per call)
    server = None
    try:
        import ntptime
    except ImportError:
        ntptime = None
    for _ in range(s.ntp_attempts if ntptime else 0):
        for host in s.ntp_servers:
            feed()  # each attempt is one DNS lookup and a 1 s wait
            ntptime.host = host
            try:
                ntptime.settime()
                server = host
                break
            except Exception:
                pass
        if server:
            break
    now = clock.unix_time()
    if server is None and not clock.clock_is_set(now):
        emit("clock failed", "servers", ",".join(s.ntp_servers), reason="no NTP answer")
        device.decide("network_failed", "clock", "ntp")
        return
    emit("clock set", "source", "ntp" if server else "rtc", "server", server, "unix", now)
    device.decide("boot", "cached" if s.hub else s.cache_state)
