"""SAS device keys and tokens, as DPS and IoT Hub define them (docs/protocol.md section 3).

Pure functions: no clock, no I/O. The firmware's iotc/sas.py computes the same bytes on
MicroPython; tests hold the two to parity.
"""

import base64
import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass, field

DPS_POLICY = "registration"


def _sign(key: bytes, message: str) -> str:
    return base64.b64encode(hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()).decode()


def derive_device_key(group_key: str, registration_id: str) -> str:
    """The device key of `registration_id` in an enrollment group (what compute-device-key gives)."""
    return _sign(base64.b64decode(group_key), registration_id)


def dps_resource(id_scope: str, registration_id: str) -> str:
    return f"{id_scope}/registrations/{registration_id}"


def hub_resource(hub_host: str, device_id: str) -> str:
    return f"{hub_host}/devices/{device_id}"


def quote(text: str) -> str:
    """URL-encode everything but unreserved characters, as Azure's SDKs do ('/' -> %2F)."""
    return urllib.parse.quote(text, safe="")


def sign_resource(key: str, encoded_resource: str, expiry: int) -> str:
    """The base64 signature over `encoded_resource` + newline + expiry (not yet URL-encoded)."""
    return _sign(base64.b64decode(key), f"{encoded_resource}\n{expiry}")


def build_token(key: str, resource: str, expiry: int, policy: str | None = None) -> str:
    encoded = quote(resource)
    token = f"SharedAccessSignature sr={encoded}&sig={quote(sign_resource(key, encoded, expiry))}&se={expiry}"
    if policy:
        token += f"&skn={quote(policy)}"
    return token


def dps_token(key: str, id_scope: str, registration_id: str, expiry: int) -> str:
    return build_token(key, dps_resource(id_scope, registration_id), expiry, DPS_POLICY)


def hub_token(key: str, hub_host: str, device_id: str, expiry: int) -> str:
    return build_token(key, hub_resource(hub_host, device_id), expiry)


@dataclass(frozen=True)
class SasToken:
    """A parsed token. `encoded_resource` is `sr` exactly as sent: the bytes that were signed."""

    encoded_resource: str
    signature: str = field(repr=False)  # with sr and se, it is the credential
    expiry: int
    policy: str | None

    @property
    def resource(self) -> str:
        return urllib.parse.unquote(self.encoded_resource)


class SasTokenError(ValueError):
    """A token that is malformed, expired, for another resource, or wrongly signed."""


def parse_token(token: str) -> SasToken:
    prefix = "SharedAccessSignature "
    if not token.startswith(prefix):
        raise SasTokenError("not a SharedAccessSignature token")
    fields: dict[str, str] = {}
    for part in token[len(prefix) :].split("&"):
        name, sep, value = part.partition("=")
        if not sep or name in fields:
            raise SasTokenError("malformed token field")
        fields[name] = value
    missing = {"sr", "sig", "se"} - fields.keys()
    if missing:
        raise SasTokenError(f"token lacks {', '.join(sorted(missing))}")
    if not fields["se"].isdigit():
        raise SasTokenError("token expiry 'se' is not a number")
    skn = fields.get("skn")
    return SasToken(
        encoded_resource=fields["sr"],
        signature=urllib.parse.unquote(fields["sig"]),
        expiry=int(fields["se"]),
        policy=urllib.parse.unquote(skn) if skn is not None else None,
    )


def verify_token(token: str, key: str, expected_resource: str, now: float) -> SasToken:
    """Check a token as a service would; raise SasTokenError naming what is wrong (never the key)."""
    parsed = parse_token(token)
    if parsed.resource.lower() != expected_resource.lower():
        raise SasTokenError("token resource does not match this device")
    if parsed.expiry <= now:
        raise SasTokenError("token expired")
    expected = sign_resource(key, parsed.encoded_resource, parsed.expiry)
    if not hmac.compare_digest(expected.encode(), parsed.signature.encode()):
        raise SasTokenError("token signature does not match the key")
    return parsed
