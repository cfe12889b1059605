# `time` of the virtual board: wall-clock functions read the board's clock (which may be unset, as
# on an ESP32 after power-on: 2000-01-01 + uptime); ticks and sleeps are the unix port's own.
import time as _t
from time import sleep, sleep_ms, sleep_us, ticks_add, ticks_cpu, ticks_diff, ticks_ms, ticks_us  # noqa: F401

import _vboard


def time():
    return _vboard.now_ns() // 1000000000


def time_ns():
    return _vboard.now_ns()


def gmtime(secs=None):
    if secs is None:
        secs = time()
    return tuple(_t.gmtime(secs))[:8]


localtime = gmtime  # an ESP32 has no time zone


def mktime(t):
    return _vboard.seconds_from_utc(t[0], t[1], t[2], t[3], t[4], t[5])
