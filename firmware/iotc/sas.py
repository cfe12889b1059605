"""SAS tokens for DPS and IoT Hub, computed on the board.

Pure functions: no sockets, no clock, no state. Runs on MicroPython (ESP32 >= 1.23, unix port)
and on CPython; byte for byte the same as the host's iotcprov.credentials.sas (parity-tested).
The board only ever holds its own device key; it never sees or derives from a group key.
The caller supplies the expiry, normally clock.expiry_in(ttl), which refuses an unset clock.
"""

import binascii
import hashlib

# Constants are written where they are used: every module-level name would stay interned on
# the board for good (iotc/__init__.py).


def hmac_sha256(key, msg):
    """HMAC-SHA256 (RFC 2104) on hashlib.sha256: MicroPython has no hmac module.

    MicroPython's sha256 objects cannot be copied, so each call hashes both pads afresh. The
    block size of SHA-256 is 64 bytes.
    """
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    inner_pad = bytearray(64)
    outer_pad = bytearray(64)
    for i in range(64):
        byte = key[i] if i < len(key) else 0
        inner_pad[i] = byte ^ 0x36
        outer_pad[i] = byte ^ 0x5C
    inner = hashlib.sha256(inner_pad)
    inner.update(msg)
    outer = hashlib.sha256(outer_pad)
    outer.update(inner.digest())
    return outer.digest()


def b64encode(data):
    """Base64 text without the newline b2a_base64 appends (newline=False is not on every build)."""
    encoded = binascii.b2a_base64(data)
    if encoded[-1:] == b"\n":
        encoded = encoded[:-1]
    return encoded.decode()


def decode_key(key_b64):
    """The raw bytes of a base64 device key; ValueError (without the key) if it is not one.

    MicroPython's a2b_base64 skips stray characters, so the key must re-encode to itself:
    the same canonical-base64 rule as the host's validate_key.
    """
    text = key_b64.strip() if isinstance(key_b64, str) else key_b64.decode().strip()
    try:
        raw = binascii.a2b_base64(text)
    except ValueError:
        raise ValueError("device key is not base64") from None
    if not text or b64encode(raw) != text:
        raise ValueError("device key is not base64")
    if not 16 <= len(raw) <= 64:
        raise ValueError("device key must decode to 16..64 bytes")
    return raw


def quote(text):
    """URL-encode like urllib.parse.quote(text, safe=''): UTF-8, unreserved kept, '%XX' upper-case."""
    data = text.encode() if isinstance(text, str) else text
    out = bytearray()  # one growing buffer: no string per character on a small heap
    for byte in data:
        if byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~":  # unreserved
            out.append(byte)
        else:
            out.append(37)  # '%'
            out.append(b"0123456789ABCDEF"[byte >> 4])
            out.append(b"0123456789ABCDEF"[byte & 15])
    return str(out, "ascii")


def build_token(key_b64, resource, expiry, policy=None):
    """SharedAccessSignature sr=...&sig=...&se=...[&skn=...] for `resource`, valid until `expiry`.

    `expiry` is Unix seconds (int). The signed string is quote(resource) + newline + expiry.
    """
    encoded = quote(resource)
    expiry = str(int(expiry))
    signature = b64encode(hmac_sha256(decode_key(key_b64), (encoded + "\n" + expiry).encode()))
    token = "SharedAccessSignature sr=" + encoded + "&sig=" + quote(signature) + "&se=" + expiry
    if policy:
        token += "&skn=" + quote(policy)
    return token


def dps_token(key_b64, id_scope, registration_id, expiry):
    """The CONNECT password for DPS: resource {scope}/registrations/{id}, skn=registration."""
    return build_token(key_b64, id_scope + "/registrations/" + registration_id, expiry, "registration")


def hub_token(key_b64, hub_host, device_id, expiry):
    """The CONNECT password for IoT Hub: resource {hub}/devices/{id}, no skn."""
    return build_token(key_b64, hub_host + "/devices/" + device_id, expiry)
