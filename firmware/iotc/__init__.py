VERSION = "0.1.0"


def _preload():
    """Import the platform modules the firmware uses before any of its own code. Where they are
    not frozen into the firmware (the virtual board compiles its stand-ins from source, a user
    may install umqtt as .py) compiling them needs large blocks, which only an unfragmented heap
    still has. Elsewhere (CPython) they are simply absent."""
    for name in ("umqtt.simple", "network", "ntptime"):
        try:
            __import__(name)
        except ImportError:
            pass


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
