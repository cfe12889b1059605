"""What the emulator's IoT Central API modules share: limits, the error and reply types, etags and
body fields (central_api.py serves the API; central_devices.py, central_groups.py its resources)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotcprov.credentials import pki
from iotcprov.validation import DEVICE_ID_MAX

if TYPE_CHECKING:
    from cryptography import x509


API_VERSIONS = ("2022-07-31",)
DEFAULT_SAS_GROUP = "SAS-IoT-Devices"
PAGE_SIZE = 25
MAX_BODY_DEPTH = 32
RATE_PER_SECOND = 20  # the service's documented limit per application
DEVICE_ID = re.compile(rf"[A-Za-z0-9-]{{1,{DEVICE_ID_MAX}}}")
GROUP_ID = re.compile(r"[A-Za-z0-9-]{1,128}")  # the reference allows 255; emulator group names 128
ENTRIES = ("primary", "secondary")
CODES = {
    400: "BadRequest",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    412: "PreconditionFailed",
    422: "UnprocessableEntity",
    429: "TooManyRequests",
    500: "InternalServerError",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES.get(status, "Error")


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON; None sends no body
    headers: dict[str, str] = field(default_factory=dict)


def etag(document: dict) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:20]
    return f'"{digest}"'


def with_etag(document: dict) -> dict:
    return {**document, "etag": etag(document)}


def check_etag(body: dict, current: dict) -> None:
    given = body.get("etag")
    if given is not None and given != current.get("etag"):
        raise ApiError(412, "The etag does not match the entity's current etag; read it again.")


def certificate_text(value: Any, field_name: str) -> x509.Certificate:
    """The reference's format (base64 of the whole PEM text), and base64 DER or raw PEM as well."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, f"{field_name} is required: base64 of the certificate's PEM text.")
    text = value.strip()
    candidates: list[bytes] = []
    if "-----BEGIN" in text:
        candidates.append(text.encode())
    else:
        try:
            decoded = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError):
            decoded = b""
        candidates.append(decoded)
    for data in candidates:
        try:
            return pki.load_certificate(data)
        except ValueError:
            continue
    raise ApiError(422, f"{field_name} is not a readable X.509 certificate (base64 of its PEM text).")


def flag(body: dict, name: str, default: bool | None = None) -> bool | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ApiError(422, f"{name} must be true or false.")
    return value


def text_field(body: dict, name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(422, f"{name} is required and must be a non-empty string.")
    return value


def load_templates(models_dir: Path) -> dict[str, dict]:
    """Device templates from DTDL interface files: the application has each one published."""
    templates: dict[str, dict] = {}
    for path in sorted(models_dir.glob("*.json")):
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(model, dict) and isinstance(model.get("@id"), str):
            templates[model["@id"].lower()] = {
                "@id": model["@id"],
                "@type": ["ModelDefinition", "DeviceModel"],
                "displayName": model.get("displayName", model["@id"]),
                "capabilityModel": model,
            }
    return templates


