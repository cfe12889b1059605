# `machine` of the virtual board: the unix port's machine plus ESP32's unique_id, reset,
# reset_cause, WDT and RTC. reset and an unfed WDT are carried out by the supervisor.
import _vboard
import machine as _m

for _name in dir(_m):
    if _name[:2] != "__":
        globals()[_name] = getattr(_m, _name)
del _name

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_freq = 160000000


def unique_id():
    return bytes.fromhex(_vboard.config["mac"])


def reset():
    _vboard.halt("reset")


def reset_cause():
    return _vboard.config["cause"]


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq = hz


class WDT:
    # Cannot be stopped; survives a soft reset; resets the board when not fed within timeout ms.
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%d) doesn't exist" % id)
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        _vboard.event("wdt=%d" % timeout)

    def feed(self):
        _vboard.event("feed")


class RTC:
    # datetime tuples as on ESP32: (year, month, day, weekday, hours, minutes, seconds, subseconds µs)
    def __init__(self, id=0):
        pass

    def datetime(self, datetimetuple=None):
        if datetimetuple is None:
            ns = _vboard.now_ns()
            t = _vboard._time.gmtime(ns // 1000000000)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], (ns // 1000) % 1000000)
        year, month, day, _weekday, hour, minute, second = datetimetuple[:7]
        micros = datetimetuple[7] if len(datetimetuple) > 7 else 0
        seconds = _vboard.seconds_from_utc(year, month, day, hour, minute, second)
        _vboard.set_now_ns(seconds * 1000000000 + micros * 1000)

    def init(self, datetimetuple):
        self.datetime(datetimetuple)
