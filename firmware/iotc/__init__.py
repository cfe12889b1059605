import gc

VERSION = "0.1.0"

# RAM is scarce on an ESP32: every name in loaded code (functions, arguments, attributes, short
# strings) is interned for good, in tables that double when full, and each module costs its
# names and a few more. So the firmware's modules are few, keep their names few and shared, and
# are loaded only while needed (firmware/README.md, Memory).

# Import the platform modules the firmware uses before any of its own code. Where they are not
# frozen into the firmware (the virtual board compiles its stand-ins from source, a user may
# install umqtt as .py) compiling them needs large blocks, which only an unfragmented heap still
# has. Elsewhere (CPython) they are simply absent.
for name in ("umqtt.simple", "network", "ntptime"):
    try:
        __import__(name)
    except ImportError:
        pass
    gc.collect()  # the compiler's leftovers, before anything long-lived lands among them
del name


class ConfigError(Exception):
    """A setting that cannot work: args = (message naming the field and the fix, the on-board
    file at fault or None). Never carries a secret."""


# Module lifetimes: which of the firmware's modules is in RAM when. Resident: this package,
# app (the Device), link. Every other module is loaded by `use` when needed and unloaded by
# `unload` or `shed` when its time is over:
#   START     start() only, once per boot          settings, config, files, sas
#   STAGE     while its stage runs, one at a time  bringup | register + dps | session + hub;
#                                                  files and sas for a token, just before it
#   FEATURES  until the next TLS handshake         outbox, central, pnp, incoming, clock
#   one call  a decision, a reading                policy, readings
START = ("settings", "config", "files", "sas")
STAGE = ("bringup", "register", "dps", "session", "hub", "files", "sas")
FEATURES = ("outbox", "central", "pnp", "incoming", "clock")


def use(name):
    """Submodule `name`, loaded if it is not. Call it where the module is used
    (`use("files").read(...)`): a module kept in a variable is not freed by unloading it."""
    return __import__("iotc." + name, None, None, ("_",))


def unload(name):
    """Forget submodule `name` so its code can be freed; the next import loads it again."""
    import sys

    sys.modules.pop("iotc." + name, None)
    globals().pop(name, None)


def shed(*groups):
    """Unload the FEATURES and the modules of `groups` (tuples of names), then collect: before a
    TLS handshake, the peak of RAM use."""
    for group in (FEATURES,) + groups:
        for name in group:
            unload(name)
    gc.collect()


def emit(event, *pairs, reason=None):
    """Print one console status line, `iotc: <event> key=value ... [reason=free text]`
    (docs/design.md): `pairs` alternate key, value; None values are left out; spaces in values
    become '_'. Callers pass only non-secret values."""
    parts = ["iotc:", event]
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i + 1] is not None:
            parts.append("%s=%s" % (pairs[i], str(pairs[i + 1]).replace(" ", "_")))
    if reason:
        parts.append("reason=" + " ".join(str(reason).split()))
    print(" ".join(parts))


# The hardware watchdog (machine.WDT) while the device runs it: every wait of the firmware feeds
# it (Device.pause, the link's reads), so only a hang lets it reset the board.
_dog = None


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
        _dog = WDT(timeout=(seconds or 7 * 86400) * 1000)
        _dog.feed()
    except (OSError, ValueError):
        if seconds:
            raise
        # A port that cannot re-arm a running watchdog resets the board after its timeout.
    if not seconds:
        _dog = None
