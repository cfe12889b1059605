# Start-up: read and check everything the firmware needs before it touches the network (the
# active identity folder, identity.json, the files it names, its wifi.json or else the data
# folder's, the assignment cache) and give the TLS context its trust. Used once, then unloaded
# with what it loaded; the checks (config.py) and the key check (sas.py) are loaded one after the
# other, never both at once.

import gc
import json
import os

from iotc import VERSION, ConfigError, emit, unload, use, watchdog
from iotc.files import read


def prepare(device):
    """Fill in device.settings and .tls, and print the `boot` line; or print one `config error`
    line and return False."""
    # One TLS context serves every connection (same roots, same client certificate). It is a
    # single block of about 3 KB, so it is made first, while the heap is still in one piece.
    try:
        import tls
    except ImportError:  # MicroPython before 1.23 called it ssl
        import ssl as tls
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED  # the server is always verified
    tls = None
    try:
        s = load(device.root)
    except ConfigError as e:
        emit("config error", "file", e.args[1] if len(e.args) > 1 else None, reason=e.args[0])
        return False
    except ValueError:  # e.g. a file that is not UTF-8 text
        emit("config error", reason="unreadable configuration; re-provision the board (iotcprov provision)")
        return False
    try:
        use("files").trust(ctx, s)
    except (OSError, ValueError) as e:  # a root or key that mbedTLS cannot parse
        emit(
            "config error", "file", s.dir,
            reason="TLS refused the roots or key (%s); re-provision the board (iotcprov provision)" % e,
        )  # fmt: skip
        return False
    if s.model_id is None:
        s.model_id = device.model_id
    device.settings = s
    device.tls = ctx
    gc.collect()
    emit(
        "boot", "version", VERSION, "device", s.device_id, "auth", s.auth, "identity", s.folder,
        "cache", s.cache_state, "reset", reset_cause(), "free", gc.mem_free(),
    )  # fmt: skip
    if s.watchdog:
        try:
            watchdog(s.watchdog)
        except (ImportError, OSError, ValueError) as e:  # no usable machine.WDT here
            emit(
                "config error", reason="options.watchdog: this board has no usable "
                "machine.WDT (%s); set it to 0" % type(e).__name__,
            )  # fmt: skip
            return False
        emit("watchdog", "timeout", s.watchdog)
    return True


def reset_cause():
    """Why the board last started ('power-on', 'watchdog', ...), or None where unknown."""
    try:
        import machine

        cause = machine.reset_cause()
    except Exception:  # a port without it
        return None
    # machine.reset_cause() values by their ESP32 names
    for name, text in (
        ("PWRON_RESET", "power-on"),
        ("HARD_RESET", "hard"),
        ("WDT_RESET", "watchdog"),
        ("DEEPSLEEP_RESET", "deepsleep"),
        ("SOFT_RESET", "soft"),
    ):
        if getattr(machine, name, None) == cause:
            return text
    return cause


def load(root):
    """Read and check everything the firmware needs before it touches the network -> a record:
    identity fields and options (config.identity), `root`, `dir` (the identity folder), `wifi`
    ((ssid, password) or None), and the cached assignment: `hub`, `assigned_id`, `cache_state`.
    ConfigError names the file at fault."""
    from iotc import config

    fix = config.FIX
    path = root + "/active"
    folder = read(path).decode().strip()
    if not folder or "/" in folder or folder in (".", ".."):
        raise ConfigError("must name an identity folder" + fix, path)
    base = root + "/" + folder
    path = base + "/identity.json"
    try:
        s = config.identity(json.loads(read(path)), folder)
    except ValueError:
        raise ConfigError("not valid JSON" + fix, path) from None
    except ConfigError as e:
        raise ConfigError(e.args[0], e.args[1] if len(e.args) > 1 else path) from None
    s.root = root
    s.dir = base
    for name in s.trust:
        if read(base + "/" + name)[:1] != b"\x30":
            raise ConfigError("must be a DER certificate" + fix, base + "/" + name)
    if s.auth != "sas":
        for name in (s.cert, s.key):
            if not read(base + "/" + name):
                raise ConfigError("is empty" + fix, base + "/" + name)
    s.wifi = None
    # The identity folder's wifi.json, so that identity and Wi-Fi change together by the `active`
    # rename; boards provisioned before keep theirs in the data folder.
    doc = None
    for path in (base + "/wifi.json", root + "/wifi.json"):
        try:
            os.stat(path)
        except OSError:  # none here
            continue
        doc = read(path)  # there but unreadable: a config error, not "no Wi-Fi settings"
        break
    if doc is not None:
        try:
            s.wifi = config.wifi(json.loads(doc))
        except ValueError:
            raise ConfigError("not valid JSON" + fix, path) from None
        except ConfigError as e:
            raise ConfigError(e.args[0], path) from None
    try:
        doc = json.loads(read(root + "/assignment.json"))
    except (ConfigError, ValueError):
        doc = None
    s.hub, s.assigned_id = config.cached_assignment(doc, s)
    s.cache_state = "cached" if s.hub else s.assigned_id
    if not s.hub:
        s.assigned_id = None
    config = doc = None
    unload("config")  # the checks are done: make room for the key check
    if s.auth == "sas":
        path = base + "/" + s.key
        try:
            use("sas").decode_key(read(path))
        except ValueError:
            raise ConfigError("must hold a base64 device key of 16-64 bytes" + fix, path) from None
        finally:
            unload("sas")
    return s
