# Wi-Fi station join and clock sync: the only network set-up the firmware does before TLS.

import time


def _station():
    try:
        import network
    except ImportError:  # a port with host networking (plain unix port): nothing to join
        return None
    return network.WLAN(network.STA_IF)


def is_up():
    sta = _station()
    return sta is None or sta.isconnected()


def join(wifi, timeout_s, pause):
    """Join the access point `wifi` = (ssid, password), or wait for a link someone else started
    when it is None. Returns (True, ip) or (False, why). `pause(ms)` is the caller's sleep."""
    sta = _station()
    if sta is None:
        return True, None
    sta.active(True)
    if not sta.isconnected():
        if wifi is not None:
            sta.connect(wifi[0], wifi[1])
        deadline = time.ticks_add(time.ticks_ms(), timeout_s * 1000)
        while not sta.isconnected():
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                if wifi is None:
                    return False, "no /iotc/wifi.json and no link"
                why = "timeout status=%s" % sta.status()
                sta.disconnect()
                return False, why
            pause(200)
    try:
        return True, sta.ifconfig()[0]
    except Exception:
        return True, None


def rssi():
    """Signal strength in dBm, or None where there is no Wi-Fi station."""
    sta = _station()
    if sta is None or not sta.isconnected():
        return None
    try:
        return sta.status("rssi")
    except Exception:
        return None


def sync_clock(servers, rounds):
    """Set the clock by NTP, trying each server in turn for `rounds` rounds (ntptime makes a
    single 1 s attempt per call). Returns the server that answered, or None."""
    try:
        import ntptime
    except ImportError:
        return None
    for _ in range(rounds):
        for host in servers:
            ntptime.host = host
            try:
                ntptime.settime()
                return host
            except Exception:
                pass
    return None
