"""Portable Unix time and the "clock is unset" guard for signing tokens.

ESP32 MicroPython counts seconds from 2000-01-01, the unix port and CPython from 1970. Until NTP
(or `mpremote rtc --set`) sets it, an ESP32 clock starts near 2000: a token signed then is already
expired, so expiry_in() raises ClockNotSet instead of producing one.
"""

import time

EPOCH_2000_OFFSET = 946684800  # seconds from 1970-01-01 to 2000-01-01 (UTC)
SANE_FLOOR = 1735689600  # 2025-01-01T00:00:00Z: any earlier reading means the clock was never set


class ClockNotSet(Exception):
    """The clock reads before SANE_FLOOR: set it (NTP) before signing anything."""


def _epoch_offset():
    return EPOCH_2000_OFFSET if time.gmtime(0)[0] == 2000 else 0


def unix_time():
    """Seconds since 1970-01-01 UTC as an int, whatever epoch the port counts from."""
    return int(time.time()) + _epoch_offset()


def iso_utc(unix):
    """Unix seconds -> '2025-04-21T11:30:16Z' (the form of iothub-creation-time-utc)."""
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % tuple(time.gmtime(int(unix) - _epoch_offset())[:6])


def clock_is_set(now=None):
    """True when `now` (default: unix_time()) is a plausible current time, not a boot-time default."""
    if now is None:
        now = unix_time()
    return now >= SANE_FLOOR


def expiry_in(ttl, now=None):
    """The Unix expiry `ttl` seconds from `now` (default: unix_time()); ClockNotSet if unset."""
    if now is None:
        now = unix_time()
    if not clock_is_set(now):
        raise ClockNotSet("clock not set (reads %d); sync time before signing" % now)
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return int(now) + int(ttl)
