"""One place for input rules shared by every command.

Each check raises InputError with a message that names the field and the fix and never
echoes a secret value (values that might be a misplaced key are not echoed either).
"""

import base64
import binascii
import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from iotcprov.board.firmware_options import check_options
from iotcprov.errors import InputError

DEVICE_ID_MAX = 128
KEY_MIN_BYTES = 16
KEY_MAX_BYTES = 64
DEVICE_ID_COLUMN = "device_id"
_ID_SCOPE = re.compile(r"0ne[0-9A-Z]{8}")  # DPS compares it as given: upper case, as IoT Central shows it
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_REGISTRATION_EXTRA = "-._:"
# DTMI (https://azure.github.io/opendigitaltwins-dtdl/DTMI): dtmi:SEGMENT(:SEGMENT)*;VERSION. A user
# segment starts with a letter, holds letters, digits and '_', and does not end with '_'; the
# version is 1..999999999 without leading zeros (DTDL v2, which IoT Central reads).
_DTMI_SEGMENT = r"[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?"
_DTMI = re.compile(rf"dtmi:{_DTMI_SEGMENT}(?::{_DTMI_SEGMENT})*;[1-9][0-9]{{0,8}}")
_DTMI_EXAMPLE = "dtmi:com:example:Thermostat;1"
_ECHO_MAX = 16  # longer rejected values are described, not shown: they may be a key in the wrong place


_KEY_LIKE = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")  # base64 (or base64url) text long enough for a key


def _shown(value: str) -> str:
    return repr(value) if len(value) <= _ECHO_MAX else f"the value ({len(value)} characters)"


def looks_like_key(value: str) -> bool:
    """True for text that could be a key given to the wrong option: long base64-like text."""
    return bool(_KEY_LIKE.fullmatch(value.strip()))


def shown(value: str) -> str:
    """How a rejected value appears in a message: quoted, unless it could be a misplaced key (or is
    too long to be useful), which is described by its length instead."""
    if looks_like_key(value) or len(value) > 120:
        return f"the value ({len(value)} characters)"
    return repr(value)


def valid_host_name(value: str) -> bool:
    """A DNS name or IPv4 address: dot-separated labels of letters, digits and '-'."""
    labels = (value or "").split(".")
    return len(value or "") <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def _check_id_characters(value: str, field: str, allowed_extra: str, rule: str) -> None:
    for position, char in enumerate(value, start=1):
        if not (char.isascii() and (char.isalnum() or char in allowed_extra)):
            raise InputError(f"{field}: character {char!r} at position {position} is not allowed; {rule}")


def validate_device_id(value: str, field: str = "--device-id") -> str:
    """IoT Central device IDs: letters, digits and '-', 1..128 characters."""
    if not value:
        raise InputError(f"{field}: empty; give a device ID of letters, digits and '-'")
    if len(value) > DEVICE_ID_MAX:
        raise InputError(f"{field}: {len(value)} characters; IoT Central allows at most {DEVICE_ID_MAX}")
    _check_id_characters(value, field, "-", "use letters, digits and '-' only")
    return value


def validate_registration_id(value: str, field: str = "--registration-id") -> str:
    """DPS registration IDs: 1..128 of letters, digits, '-', '.', '_', ':'; ends alphanumeric or '-'.

    Wider than IoT Central's device-ID rule; for code that speaks DPS in general (the emulator).
    """
    if not value:
        raise InputError(f"{field}: empty; give a registration ID")
    if len(value) > DEVICE_ID_MAX:
        raise InputError(f"{field}: {len(value)} characters; DPS allows at most {DEVICE_ID_MAX}")
    _check_id_characters(value, field, _REGISTRATION_EXTRA, "use letters, digits and '-', '.', '_', ':'")
    if value[-1] in "._:":
        raise InputError(f"{field}: ends with {value[-1]!r}; the last character must be a letter, digit or -")
    return value


def validate_id_scope(value: str, field: str = "--id-scope") -> str:
    """DPS ID scopes look like 0ne00ABCDEF: '0ne' and 8 upper-case letters or digits."""
    text = value or ""
    if not _ID_SCOPE.fullmatch(text) and _ID_SCOPE.fullmatch(text[:3].lower() + text[3:].upper()):
        raise InputError(
            f"{field}: {_shown(text)} is in the wrong case; DPS compares the scope as given: "
            f"use {text[:3].lower() + text[3:].upper()}, as IoT Central shows it"
        )
    if not _ID_SCOPE.fullmatch(text):
        raise InputError(
            f"{field}: {_shown(value or '')} is not an ID scope; copy it from IoT Central "
            "(Permissions > Device connection groups), e.g. 0ne00ABCDEF"
        )
    return value


def validate_model_id(value: str, field: str = "--model-id") -> str:
    """A DTDL v2 model ID (DTMI), e.g. dtmi:com:example:Thermostat;1; says which rule it breaks."""
    if _DTMI.fullmatch(value or ""):
        return value
    text = value or ""
    shown = repr(text) if text.startswith("dtmi:") and len(text) <= 128 else _shown(text)
    path, semicolon, version = text[5:].partition(";") if text.startswith("dtmi:") else ("", "", "")
    if not text.startswith("dtmi:"):
        why = "does not start with 'dtmi:'"
    elif not semicolon:
        why = "has no ';VERSION' (quote the value in a shell, where ';' ends the command)"
    elif not re.fullmatch(r"[1-9][0-9]{0,8}", version):
        why = "has a version that is not a whole number from 1 to 999999999"
    else:
        bad = next((s for s in path.split(":") if not re.fullmatch(_DTMI_SEGMENT, s)), "")
        why = (
            f"has the segment {bad!r}: a segment starts with a letter, holds letters, digits and '_' "
            "and does not end with '_'"
        )
    raise InputError(f"{field}: {shown} {why}; give a DTMI such as {_DTMI_EXAMPLE}")


def validate_hub_host(value: str, field: str = "--hub") -> str:
    """An IoT Hub host name such as iotc-1234.azure-devices.net: no scheme, port or path."""
    if len((value or "").split(".")) < 2 or not valid_host_name(value):
        raise InputError(
            f"{field}: {_shown(value or '')} is not a host name; give the hub host only, "
            "e.g. iotc-1234.azure-devices.net"
        )
    return value


def validate_key(value: str, field: str = "--key") -> bytes:
    """A symmetric key: base64 of 16..64 bytes. Returns the decoded bytes; never echoes the key."""
    text = (value or "").strip()
    if not text:
        raise InputError(f"{field}: empty; give the key as base64 text, as IoT Central shows it")
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:  # e.g. primary and secondary key in one file
        raise InputError(
            f"{field}: holds {len(lines)} lines; give one key, alone on one line, as IoT Central shows it"
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    # Canonical only (re-encodes to itself): exactly what the firmware's decode_key accepts.
    if raw is None or base64.b64encode(raw).decode("ascii") != text:
        raise InputError(f"{field}: not valid base64; copy the whole key as IoT Central shows it")
    if not KEY_MIN_BYTES <= len(raw) <= KEY_MAX_BYTES:
        raise InputError(
            f"{field}: decodes to {len(raw)} bytes; a key must be {KEY_MIN_BYTES} to {KEY_MAX_BYTES} bytes"
        )
    return raw


def validate_key_bytes(count: int, field: str = "--bytes") -> int:
    """The size of a key to generate: 16..64 bytes, as DPS and IoT Hub accept."""
    if not KEY_MIN_BYTES <= count <= KEY_MAX_BYTES:
        raise InputError(f"{field}: {count} is out of range; give {KEY_MIN_BYTES} to {KEY_MAX_BYTES} bytes")
    return count


def validate_ttl(seconds: int, field: str = "--ttl") -> int:
    if seconds <= 0:
        raise InputError(f"{field}: {seconds} is not a positive number of seconds")
    return seconds


def validate_expiry(expiry: int, now: float, field: str = "--expiry") -> int:
    """A token expiry in Unix seconds that is still in the future."""
    if expiry <= now:
        raise InputError(f"{field}: {expiry} is not in the future (now {int(now)}); give a later Unix time")
    return expiry


def parse_options(pairs: list[str], field: str = "--option") -> dict:
    """Firmware options given as NAME=VALUE: VALUE as JSON when it is JSON (30, true, "x"), else text."""
    options: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or looks_like_key(pair):  # a key ends in '=' too: never a name
            raise InputError(f"{field}: {shown(pair)} is not NAME=VALUE, e.g. telemetry_interval=30")
        try:
            options[name] = json.loads(value)
        except ValueError:
            options[name] = value
    check_options(options, field)  # what the board would refuse at boot
    return options


@dataclass(frozen=True)
class DeviceIdLine:
    """One device ID read from a file, with its 1-based line number and, for CSV, the whole row."""

    line: int
    device_id: str
    columns: dict[str, str] = field(default_factory=dict)


def read_device_id_file(path: str | Path, field: str = "--device-ids") -> list[DeviceIdLine]:
    """Device IDs from a file: one per line, or a CSV whose header has a `device_id` column.

    Blank lines and lines starting with '#' are skipped. Every ID is validated and duplicates
    (case-insensitive, as DPS compares them) are refused, all before anything is returned.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"{field}: cannot read {str(path)!r}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InputError(f"{field}: {str(path)!r} is not UTF-8 text") from None
    rows = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rows:
        raise InputError(f"{field}: {str(path)!r} holds no device IDs")
    header = rows[0][1]
    if "," in header or header.strip().lower() == DEVICE_ID_COLUMN:
        entries = _read_csv_rows(rows, field)
    else:
        entries = [DeviceIdLine(number, line.strip()) for number, line in rows]
    return _checked_entries(entries, field)


def _read_csv_rows(rows: list[tuple[int, str]], field: str) -> list[DeviceIdLine]:
    header_number, header = rows[0]
    names = [name.strip().lower() for name in next(csv.reader(io.StringIO(header)))]
    if DEVICE_ID_COLUMN not in names:
        raise InputError(f"{field}: line {header_number}: the CSV header has no {DEVICE_ID_COLUMN!r} column")
    column = names.index(DEVICE_ID_COLUMN)
    entries = []
    for number, line in rows[1:]:
        values = next(csv.reader(io.StringIO(line)))
        if len(values) != len(names):
            raise InputError(
                f"{field}: line {number}: {len(values)} columns where the header has {len(names)}"
            )
        entries.append(DeviceIdLine(number, values[column].strip(), dict(zip(names, values, strict=True))))
    if not entries:
        raise InputError(f"{field}: the CSV has a header but no device rows")
    return entries


def _checked_entries(entries: list[DeviceIdLine], field: str) -> list[DeviceIdLine]:
    first_seen: dict[str, int] = {}
    for entry in entries:
        validate_device_id(entry.device_id, field=f"{field}: line {entry.line}")
        folded = entry.device_id.lower()
        if folded in first_seen:
            raise InputError(
                f"{field}: line {entry.line}: device ID {entry.device_id!r} repeats line {first_seen[folded]}"
            )
        first_seen[folded] = entry.line
    return entries


def read_device_ids(path: str | Path, field: str = "--device-ids") -> list[str]:
    """Just the validated device IDs of read_device_id_file, in file order."""
    return [entry.device_id for entry in read_device_id_file(path, field)]
