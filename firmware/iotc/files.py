# The on-board files the firmware reads while running (docs/design.md, on-board file layout) and
# what a connection presents from them: the CONNECT password (a fresh SAS token from the device
# key, or empty for X.509) and the TLS context's trust (the identity's roots; its certificate and
# key for X.509); and the assignment cache, written atomically (temporary file + rename).
# Loaded when needed and unloaded after; nothing read here is kept or printed.

import os

from iotc import ConfigError


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        fix = "; re-provision the board (iotcprov provision)"
        raise ConfigError("missing or unreadable" + fix, path) from None


def password(s, hub=None):
    """(password, token expiry) for DPS, or for the hub `hub`; X.509: ("", None). None while the
    clock is unset: a token signed then would be expired, and certificate dates cannot be checked."""
    from iotc import clock

    now = clock.unix_time()
    if not clock.clock_is_set(now):
        return None
    if s.auth != "sas":
        return "", None
    expiry = clock.expiry_in(s.token_ttl, now)
    key = read(s.dir + "/" + s.key)
    from iotc import sas

    if hub is None:
        return sas.dps_token(key, s.id_scope, s.device_id, expiry), expiry
    return sas.hub_token(key, hub, s.assigned_id, expiry), expiry


def trust(ctx, s):
    """Give the TLS context `ctx` the identity's roots (DER, one per call: the unix port cannot
    parse PEM bundles) and, for X.509, the client certificate (PEM may carry the chain) and key."""
    for name in s.trust:
        ctx.load_verify_locations(read(s.dir + "/" + name))  # tls takes cadata positionally
    if s.auth != "sas":
        ctx.load_cert_chain(read(s.dir + "/" + s.cert), read(s.dir + "/" + s.key))


def save_assignment(s, doc):
    """Write the cache through a temporary file and one rename: a power cut leaves the old cache
    or the new one, never half of one."""
    import json

    final = s.root + "/assignment.json"
    with open(final + ".tmp", "w") as f:
        json.dump(doc, f)
    try:
        os.rename(final + ".tmp", final)
    except OSError:  # FAT refuses to rename over an existing file
        forget_assignment(s)
        os.rename(final + ".tmp", final)


def forget_assignment(s):
    try:
        os.remove(s.root + "/assignment.json")
    except OSError:
        pass
