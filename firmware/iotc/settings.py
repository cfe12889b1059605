# Reading and checking everything the firmware needs before it touches the network: the active
# identity folder, identity.json, the files it names, wifi.json and the assignment cache. Used
# once at start (with config.py) and then unloaded to give the RAM back.

import json
import os

from iotc import ConfigError, config, sas
from iotc.files import FIX, ROOT, read


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
