# What a connection presents: the CONNECT password (a fresh SAS token, or empty for X.509), and
# the trust the TLS context carries (the identity's roots; its certificate and key for X.509).
# Loaded when needed and unloaded after; a token goes straight to the client, never kept or printed.

from iotc import clock, files
from iotc.link import trust


def password(s, hub_host=None):
    """(password, token expiry) for DPS, or for the hub `hub_host`. X.509: ("", None), but only
    once the clock is set, since certificate dates cannot be checked before."""
    if s.auth != "sas":
        if not clock.clock_is_set():
            raise clock.ClockNotSet("clock not set")
        return "", None
    from iotc import sas

    expiry = clock.expiry_in(s.token_ttl)
    if hub_host is None:
        return sas.dps_token(files.device_key(s), s.id_scope, s.device_id, expiry), expiry
    return sas.hub_token(files.device_key(s), hub_host, s.assigned_id, expiry), expiry


def load_trust(ctx, s):
    """Give the TLS context `ctx` the identity's roots, plus its certificate and key for X.509."""
    if s.auth == "sas":
        trust(ctx, files.roots(s))
    else:
        cert, key = files.client_cert(s)
        trust(ctx, files.roots(s), cert, key)
