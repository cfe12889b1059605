"""One place for input rules shared by every command.

Each check raises InputError with a message that names the field and the fix and never
echoes a secret value.
"""

import base64
import binascii
import re

from iotcprov.errors import InputError

DEVICE_ID_MAX = 128
KEY_MIN_BYTES = 16
KEY_MAX_BYTES = 64
_ID_SCOPE = re.compile(r"0ne[0-9A-Za-z]{8}")


def validate_device_id(value: str, field: str = "--device-id") -> str:
    """IoT Central device IDs: letters, digits and '-', 1..128 characters."""
    if not value:
        raise InputError(f"{field}: empty; give a device ID of letters, digits and '-'")
    if len(value) > DEVICE_ID_MAX:
        raise InputError(f"{field}: {len(value)} characters; IoT Central allows at most {DEVICE_ID_MAX}")
    for position, char in enumerate(value, start=1):
        if not (char.isascii() and (char.isalnum() or char == "-")):
            raise InputError(
                f"{field}: character {char!r} at position {position} is not allowed; "
                "use letters, digits and '-' only"
            )
    return value


def validate_id_scope(value: str, field: str = "--id-scope") -> str:
    """DPS ID scopes look like 0ne00ABCDEF: '0ne' and 8 letters or digits."""
    if not _ID_SCOPE.fullmatch(value or ""):
        raise InputError(
            f"{field}: {value!r} is not an ID scope; copy it from IoT Central "
            "(Permissions > Device connection groups), e.g. 0ne00ABCDEF"
        )
    return value


def validate_key(value: str, field: str = "--key") -> bytes:
    """A symmetric key: base64 of 16..64 bytes. Returns the decoded bytes; never echoes the key."""
    text = (value or "").strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{field}: not valid base64; copy the whole key as IoT Central shows it") from None
    if not KEY_MIN_BYTES <= len(raw) <= KEY_MAX_BYTES:
        raise InputError(
            f"{field}: decodes to {len(raw)} bytes; a key must be {KEY_MIN_BYTES} to {KEY_MAX_BYTES} bytes"
        )
    return raw


def validate_ttl(seconds: int, field: str = "--ttl") -> int:
    if seconds <= 0:
        raise InputError(f"{field}: {seconds} is not a positive number of seconds")
    return seconds
