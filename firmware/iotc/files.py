# The on-board files the firmware reads while running (docs/design.md, on-board file layout):
# trust roots and credentials, read when connecting and not kept, and the assignment cache,
# written atomically (temporary file + rename). Nothing read here is ever printed.

import json
import os

from iotc import ConfigError

ROOT = "/iotc-data"
FIX = "; re-provision the board (iotcprov provision)"


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        raise ConfigError("missing or unreadable" + FIX, path) from None


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
