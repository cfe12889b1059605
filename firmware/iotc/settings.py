# Start-up: read and check everything the firmware needs before it touches the network (the
# active identity folder, identity.json, the files it names, wifi.json, the assignment cache)
# and give the TLS context its trust. Used once (with config.py), then unloaded.

import gc
import json
import os

from iotc import VERSION, ConfigError, config, sas, status
from iotc.files import FIX, ROOT, read


def prepare(device):
    """Fill in device.settings and .tls, and print the `boot` line; or print one `config error`
    line and return False."""
    # One TLS context serves every connection (same roots, same client certificate). It is a
    # single block of about 3 KB, so it is made first, while the heap is still in one piece.
    from iotc.link import tls_context

    ctx = tls_context()
    try:
        s = load(device.root)
    except ConfigError as e:
        status.emit("config error", "file", e.args[1] if len(e.args) > 1 else None, reason=e.args[0])
        return False
    except ValueError:  # e.g. a file that is not UTF-8 text
        status.emit("config error", reason="unreadable configuration" + FIX)
        return False
    from iotc import credentials

    try:
        credentials.load_trust(ctx, s)
    except (OSError, ValueError) as e:  # a root or key that mbedTLS cannot parse
        status.emit("config error", "file", s.dir, reason="TLS refused the roots or key (%s)%s" % (e, FIX))
        return False
    device.settings = s
    device.tls = ctx
    gc.collect()
    status.emit(
        "boot", "version", VERSION, "device", s.device_id, "auth", s.auth, "identity", s.folder,
        "cache", s.cache_state, "reset", reset_cause(), "free", gc.mem_free(),
    )  # fmt: skip
    return True


# machine.reset_cause() values by their ESP32 names.
RESET_CAUSES = (
    ("PWRON_RESET", "power-on"),
    ("HARD_RESET", "hard"),
    ("WDT_RESET", "watchdog"),
    ("DEEPSLEEP_RESET", "deepsleep"),
    ("SOFT_RESET", "soft"),
)


def reset_cause():
    """Why the board last started ('power-on', 'watchdog', ...), or None where unknown."""
    try:
        import machine

        cause = machine.reset_cause()
    except Exception:  # a port without it
        return None
    for name, text in RESET_CAUSES:
        if getattr(machine, name, None) == cause:
            return text
    return cause


def _json(path):
    try:
        return json.loads(read(path))
    except ValueError:
        raise ConfigError("not valid JSON" + FIX, path) from None


def _file(error):
    return error.args[1] if len(error.args) > 1 else None


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def load(root=ROOT):
    """Read and check everything the firmware needs before it touches the network -> a record:
    identity fields and options (config.identity), `dir` (the identity folder), `wifi`
    ((ssid, password) or None), and the cached assignment: `hub`, `assigned_id`, `cache_state`.
    ConfigError names the file at fault."""
    active = root + "/active"
    folder = read(active).decode().strip()
    if not folder or "/" in folder or folder in (".", ".."):
        raise ConfigError("must name an identity folder" + FIX, active)
    base = root + "/" + folder
    path = base + "/identity.json"
    try:
        record = config.identity(_json(path), folder)
    except ConfigError as e:
        raise ConfigError(e.args[0], _file(e) or path) from None
    record.root = root
    record.dir = base
    for name in record.trust:
        if read(base + "/" + name)[:1] != b"\x30":
            raise ConfigError("must be a DER certificate" + FIX, base + "/" + name)
    if record.auth == "sas":
        path = base + "/" + record.key
        try:
            sas.decode_key(read(path))
        except ValueError:
            raise ConfigError("must hold a base64 device key of 16-64 bytes" + FIX, path) from None
    else:
        for name in (record.cert, record.key):
            if not read(base + "/" + name):
                raise ConfigError("is empty" + FIX, base + "/" + name)
    record.wifi = None
    path = root + "/wifi.json"
    if _exists(path):
        try:
            record.wifi = config.wifi(_json(path))
        except ConfigError as e:
            raise ConfigError(e.args[0], path) from None
    try:
        cache = json.loads(read(root + "/assignment.json"))
    except (ConfigError, ValueError):
        cache = None
    record.hub, record.assigned_id = config.cached_assignment(cache, record)
    record.cache_state = "cached" if record.hub else record.assigned_id
    if not record.hub:
        record.assigned_id = None
    return record
