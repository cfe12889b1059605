VERSION = "0.1.0"


def _preload():
    """Import the platform modules the firmware uses before any of its own code. Where they are
    not frozen into the firmware (the virtual board compiles its stand-ins from source, a user
    may install umqtt as .py) compiling them needs large blocks, which only an unfragmented heap
    still has. Elsewhere (CPython) they are simply absent."""
    import gc

    for name in ("umqtt.simple", "network", "ntptime"):
        try:
            __import__(name)
        except ImportError:
            pass
        gc.collect()  # the compiler's leftovers, before anything long-lived lands among them


_preload()


class ConfigError(Exception):
    """A setting that cannot work: args = (message naming the field and the fix, the on-board
    file at fault or None). Never carries a secret."""


def unload(name):
    """Forget submodule `name` so its code can be freed (RAM is scarce on an ESP32); the next
    import loads it again."""
    import sys

    sys.modules.pop("iotc." + name, None)
    globals().pop(name, None)


# The hardware watchdog (machine.WDT) while the device runs it: every wait of the firmware feeds
# it (Device.pause, the link's reads), so only a hang lets it reset the board.
_dog = None
RELEASED_MS = 7 * 86400 * 1000  # what the watchdog is stretched to when the device stops


def feed():
    if _dog is not None:
        _dog.feed()


def watchdog(seconds):
    """Start the watchdog with a `seconds` timeout, or with 0 stop feeding it: a machine.WDT
    cannot be stopped, so it is stretched to a week (where the port can re-arm it) and the board
    stays usable at the REPL (deploy, provision) after the device stops or Ctrl-C."""
    global _dog
    if not seconds and _dog is None:
        return
    from machine import WDT

    try:
        _dog = WDT(timeout=seconds * 1000 if seconds else RELEASED_MS)
        _dog.feed()
    except (OSError, ValueError):
        if seconds:
            raise
        # A port that cannot re-arm a running watchdog resets the board after its timeout.
    if not seconds:
        _dog = None
