# The on-board files (docs/design.md, on-board file layout): the active identity, Wi-Fi
# settings, trust roots and credentials, and the assignment cache written atomically
# (temporary file + rename). Nothing read here is ever printed.

import json
import os

from iotc import ConfigError, unload

ROOT = "/iotc"
FIX = "; re-provision the board (iotcprov provision)"


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        raise ConfigError("missing or unreadable" + FIX, path) from None


def _json(path):
    try:
        return json.loads(read(path))
    except ValueError:
        raise ConfigError("not valid JSON" + FIX, path) from None


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
    from iotc import config

    try:
        active = root + "/active"
        folder = read(active).decode().strip()
        if not folder or "/" in folder or folder in (".", ".."):
            raise ConfigError("must name an identity folder" + FIX, active)
        base = root + "/" + folder
        path = base + "/identity.json"
        try:
            record = config.identity(_json(path), folder)
        except ConfigError as e:
            raise ConfigError(e.args[0], e.file or path) from None
        record.root = root
        record.dir = base
        for name in record.trust:
            if read(base + "/" + name)[:1] != b"\x30":
                raise ConfigError("must be a DER certificate" + FIX, base + "/" + name)
        if record.auth == "sas":
            path = base + "/" + record.key
            try:
                config.parse_device_key(read(path))
            except ConfigError as e:
                raise ConfigError(e.args[0], e.file or path) from None
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
    finally:
        unload("config")


def device_key(s):
    """The SAS device key (base64 text), read when signing and not kept."""
    return read(s.dir + "/" + s.key).decode().strip()


def client_cert(s):
    """(cert, key) bytes for TLS client authentication, PEM or DER as the host wrote them."""
    return read(s.dir + "/" + s.cert), read(s.dir + "/" + s.key)


def roots(s):
    return [read(s.dir + "/" + name) for name in s.trust]


def save_assignment(s, doc):
    """Write the cache through a temporary file and one rename: a power cut leaves the old cache
    or the new one, never half of one."""
    final = s.root + "/assignment.json"
    temp = final + ".tmp"
    with open(temp, "w") as f:
        json.dump(doc, f)
    try:
        os.rename(temp, final)
    except OSError:  # FAT refuses to rename over an existing file
        forget_assignment(s)
        os.rename(temp, final)


def forget_assignment(s):
    try:
        os.remove(s.root + "/assignment.json")
    except OSError:
        pass
