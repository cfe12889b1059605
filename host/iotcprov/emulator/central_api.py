"""IoT Central's data-plane REST API (api-version 2022-07-31), the subset docs/central.md lists.

`CentralApi.handle` is sans-I/O: (method, path under /api, query, headers, body) → `Reply`. `build`
wraps it in an aiohttp application that the emulator's web server mounts at `/api`. It works over
the same store DPS and the hub use: an enrollment group made here is the group devices register
against, a device created here is approved when it registers, and `provisioned` is true once DPS
assigned it. Errors have the reference's shape, `{"error": {code, message, requestId, time}}`,
with an `x-ms-error-code` header. Callers authenticate with API tokens the emulator issued
(`iotcprov emulator token create`); only their hashes are stored.
"""

from __future__ import annotations

import base64
import binascii
import collections
import email.utils
import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotcprov.credentials import pki
from iotcprov.credentials.sas import derive_device_key
from iotcprov.emulator import jsonbody
from iotcprov.emulator.control import Control, ControlError
from iotcprov.emulator.session import Close
from iotcprov.validation import DEVICE_ID_MAX

if TYPE_CHECKING:
    from aiohttp import web
    from cryptography import x509

API_VERSIONS = ("2022-07-31",)
DEFAULT_SAS_GROUP = "SAS-IoT-Devices"
PAGE_SIZE = 25
MAX_BODY_DEPTH = 32
RATE_PER_SECOND = 20  # the service's documented limit per application
_DEVICE_ID = re.compile(rf"[A-Za-z0-9-]{{1,{DEVICE_ID_MAX}}}")
_GROUP_ID = re.compile(r"[A-Za-z0-9-]{1,128}")  # the reference allows 255; emulator group names 128
_ENTRIES = ("primary", "secondary")
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


def _etag(document: dict) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:20]
    return f'"{digest}"'


def _with_etag(document: dict) -> dict:
    return {**document, "etag": _etag(document)}


def _check_etag(body: dict, current: dict) -> None:
    given = body.get("etag")
    if given is not None and given != current.get("etag"):
        raise ApiError(412, "The etag does not match the entity's current etag; read it again.")


def _certificate_text(value: Any, field_name: str) -> x509.Certificate:
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


def _flag(body: dict, name: str, default: bool | None = None) -> bool | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ApiError(422, f"{name} must be true or false.")
    return value


def _text(body: dict, name: str, required: bool = False) -> str | None:
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


class CentralApi:
    def __init__(
        self,
        control: Control,
        templates: dict[str, dict] | None = None,
        now: Callable[[], float] = time.time,
        rate_per_second: int | None = RATE_PER_SECOND,
    ) -> None:
        self.control = control
        self.store = control.store
        self.now = now
        self.templates = templates if templates is not None else _packaged_templates()
        self.rate_per_second = rate_per_second
        self._recent: collections.deque[float] = collections.deque()
        self.routes: list[tuple[str, re.Pattern, Callable[..., Reply]]] = [
            (method, re.compile(pattern + "$"), handler)
            for method, pattern, handler in [
                ("GET", r"/devices", self.list_devices),
                ("GET", r"/devices/(?P<id>[^/]+)", self.get_device),
                ("PUT", r"/devices/(?P<id>[^/]+)", self.put_device),
                ("PATCH", r"/devices/(?P<id>[^/]+)", self.patch_device),
                ("DELETE", r"/devices/(?P<id>[^/]+)", self.delete_device),
                ("GET", r"/devices/(?P<id>[^/]+)/credentials", self.credentials),
                ("GET", r"/devices/(?P<id>[^/]+)/attestation", self.get_attestation),
                ("PUT", r"/devices/(?P<id>[^/]+)/attestation", self.put_attestation),
                ("PATCH", r"/devices/(?P<id>[^/]+)/attestation", self.patch_attestation),
                ("DELETE", r"/devices/(?P<id>[^/]+)/attestation", self.delete_attestation),
                ("GET", r"/devices/(?P<id>[^/]+)/telemetry/(?P<name>[^/]+)", self.telemetry),
                ("GET", r"/enrollmentGroups", self.list_groups),
                ("GET", r"/enrollmentGroups/(?P<id>[^/]+)", self.get_group),
                ("PUT", r"/enrollmentGroups/(?P<id>[^/]+)", self.put_group),
                ("PATCH", r"/enrollmentGroups/(?P<id>[^/]+)", self.patch_group),
                ("DELETE", r"/enrollmentGroups/(?P<id>[^/]+)", self.delete_group),
                ("GET", r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)", self.get_cert),
                ("PUT", r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)", self.put_cert),
                (
                    "DELETE",
                    r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)",
                    self.delete_cert,
                ),
                (
                    "POST",
                    r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)/generateVerificationCode",
                    self.verification_code,
                ),
                (
                    "POST",
                    r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)/verify",
                    self.verify,
                ),
                ("GET", r"/deviceTemplates", self.list_templates),
                ("GET", r"/deviceTemplates/(?P<id>[^/]+)", self.get_template),
            ]
        ]

    # ------------------------------------------------------------ the request cycle
    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw: bytes,
        base_url: str,
    ) -> Reply:
        """One request; `path` is below /api, `base_url` is the API's own URL (for nextLink)."""
        request_id = secrets.token_hex(4)
        try:
            self._authenticate(headers.get("Authorization") or headers.get("authorization"))
            self._throttle()
            version = query.get("api-version")
            if not version:
                raise ApiError(
                    400, "The api-version query parameter is required.", "MissingApiVersionParameter"
                )
            if version not in API_VERSIONS:
                raise ApiError(
                    400,
                    f"api-version {version!r} is not supported here; use {', '.join(API_VERSIONS)}.",
                    "InvalidApiVersionParameter",
                )
            handler, match = self._route(method, urllib.parse.unquote(path.rstrip("/")) or "/")
            body = self._body(raw, method)
            reply = handler(match, body, query, base_url)
        except ApiError as error:
            reply = self._error(error, request_id)
        except ControlError as error:  # the emulator's own checks, on a body the caller sent
            reply = self._error(
                ApiError(422 if error.status == 400 else error.status, error.message), request_id
            )
        except Exception as error:  # a bug answers 500 and the server keeps running
            reply = self._error(ApiError(500, f"Internal error ({type(error).__name__})."), request_id)
        reply.headers.setdefault("x-ms-request-id", request_id)
        return reply

    def _error(self, error: ApiError, request_id: str) -> Reply:
        stamp = email.utils.formatdate(self.now(), usegmt=True)
        message = f"{error.message} Request ID: {request_id}, Time: {stamp}."
        body = {"error": {"code": error.code, "message": message, "requestId": request_id, "time": stamp}}
        headers = {"x-ms-error-code": error.code}
        if error.status == 429:
            headers["Retry-After"] = "1"
        return Reply(error.status, body, headers)

    def _route(self, method: str, path: str) -> tuple[Callable[..., Reply], dict]:
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match:
                allowed = True
                if route_method == method:
                    return handler, match.groupdict()
        if allowed:
            raise ApiError(405, f"{method} is not allowed on {path}.")
        raise ApiError(404, f"No such resource: {path}.")

    def _body(self, raw: bytes, method: str) -> dict:
        if method in ("GET", "DELETE") or not raw.strip():
            return {}
        try:
            body = jsonbody.parse(raw, MAX_BODY_DEPTH)
        except jsonbody.BadJson as error:
            raise ApiError(400, f"The body is not valid JSON: {error}.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The body must be a JSON object.")
        return body

    def _authenticate(self, header: str | None) -> None:
        if not header:
            raise ApiError(401, "An Authorization header is required (an API token).")
        if header.startswith("Bearer "):
            raise ApiError(
                401,
                "The emulator accepts only API tokens it issued (iotcprov emulator token create), "
                "not Microsoft Entra bearer tokens.",
            )
        scheme, _, rest = header.partition(" ")
        fields = dict(urllib.parse.parse_qsl(rest, keep_blank_values=True))
        if scheme != "SharedAccessSignature" or not {"sr", "sig", "skn", "se"} <= set(fields):
            raise ApiError(401, "The provided authentication token is invalid.")
        row = self.store.api_token(fields["skn"])
        digest = hashlib.sha256(header.strip().encode()).hexdigest()
        if row is None or not hmac.compare_digest(digest, row["token_hash"]):
            raise ApiError(401, "The provided authentication token is invalid.")
        if fields["sr"] != self.control.app_id():
            raise ApiError(401, "The provided authentication token is not valid for this application.")
        if int(row["expiry_ms"]) <= self.now() * 1000:
            raise ApiError(401, "The provided authentication token has expired.")

    def _throttle(self) -> None:
        if self.rate_per_second is None:
            return
        now = self.now()
        while self._recent and self._recent[0] <= now - 1:
            self._recent.popleft()
        if len(self._recent) >= self.rate_per_second:
            raise ApiError(429, f"Too many requests: the limit is {self.rate_per_second} per second.")
        self._recent.append(now)

    @staticmethod
    def _page(items: list[dict], query: Mapping[str, str], base_url: str, path: str) -> Reply:
        try:
            start = int(query.get("$skiptoken", "0"))
        except ValueError:
            raise ApiError(400, "$skiptoken is not valid.") from None
        page = items[start : start + PAGE_SIZE]
        body: dict[str, Any] = {"value": page}
        if start + PAGE_SIZE < len(items):
            next_query = urllib.parse.urlencode(
                {"api-version": query["api-version"], "$skiptoken": start + PAGE_SIZE}
            )
            body["nextLink"] = f"{base_url}{path}?{next_query}"
        return Reply(200, body)

    # ------------------------------------------------------------ devices
    def _device_view(self, device_id: str) -> dict:
        app = self.store.app_device(device_id)
        registered = self.store.device(device_id)
        row = app or registered
        if row is None:
            raise ApiError(404, f"Device {device_id!r} was not found.")
        view: dict[str, Any] = {
            "id": row["device_id"],
            "displayName": (app and app["display_name"]) or row["device_id"],
            "enabled": bool(app["enabled"]) if app else True,  # registered before the API knew it
            "provisioned": bool(registered and registered["status"] == "assigned"),
            "simulated": bool(app["simulated"]) if app else False,
        }
        template = (app or {}).get("template") or (
            registered and (registered["hub_model_id"] or registered["dps_model_id"])
        )
        if template:
            view["template"] = template
        if app and json.loads(app["organizations"]):
            view["organizations"] = json.loads(app["organizations"])
        return _with_etag(view)

    def _device_ids(self) -> list[str]:
        ids = {row["device_id"].lower(): row["device_id"] for row in self.store.devices()}
        ids.update({row["device_id"].lower(): row["device_id"] for row in self.store.app_devices()})
        return [ids[key] for key in sorted(ids)]

    def list_devices(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        return self._page([self._device_view(i) for i in self._device_ids()], query, base_url, "/devices")

    def get_device(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        return Reply(200, self._device_view(match["id"]))

    def _device_values(self, body: dict) -> dict:
        values: dict[str, Any] = {}
        if "displayName" in body:
            values["display_name"] = _text(body, "displayName")
        if "template" in body:
            template = _text(body, "template")
            if template is not None and template.lower() not in self.templates:
                raise ApiError(400, f"template {template!r} is not a published device template.")
            values["template"] = self.templates[template.lower()]["@id"] if template else None
        if "simulated" in body:
            if _flag(body, "simulated"):
                raise ApiError(422, "The emulator has no simulated devices; create a real one.")
            values["simulated"] = 0
        if "enabled" in body:
            values["enabled"] = 1 if _flag(body, "enabled") else 0
        if "organizations" in body:
            organizations = body["organizations"]
            if not isinstance(organizations, list) or not all(isinstance(o, str) for o in organizations):
                raise ApiError(422, "organizations must be a list of organization IDs.")
            values["organizations"] = json.dumps(organizations)
        return values

    def put_device(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = match["id"]
        if not _DEVICE_ID.fullmatch(device_id):
            raise ApiError(400, "A device ID holds 1-128 letters, digits and '-'.")
        existing = self._existing_device(device_id)
        if existing is not None:
            _check_etag(body, existing)
        values = {"enabled": 1, **self._device_values(body)}
        self.store.put_app_device(device_id, **values)
        self._after_enabled_change(device_id, values)
        kind = "device created" if existing is None else "device updated"
        self.control.context.event("central", kind, device_id, None, self.now())
        return Reply(200, self._device_view(device_id))

    def patch_device(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = match["id"]
        current = self._device_view(device_id)
        _check_etag(body, current)
        values = self._device_values(body)
        if self.store.app_device(device_id) is None:
            values = {"enabled": 1, **values}
        self.store.put_app_device(device_id, **values)
        self._after_enabled_change(device_id, values)
        if "enabled" in values:
            kind = "device approved" if values["enabled"] else "device blocked"
            self.control.context.event("central", kind, device_id, None, self.now())
        return Reply(200, self._device_view(device_id))

    def _existing_device(self, device_id: str) -> dict | None:
        try:
            return self._device_view(device_id)
        except ApiError:
            return None

    def _after_enabled_change(self, device_id: str, values: dict) -> None:
        if values.get("enabled") == 0:  # a blocked device loses its hub connection
            session = self.control.registry.session(device_id)
            if session is not None:
                session.push([Close("device blocked in the application")])

    def delete_device(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = match["id"]
        self._device_view(device_id)  # 404 when unknown
        session = self.control.registry.session(device_id)
        if session is not None:
            session.push([Close("device deleted from the application")])
        self.store.delete_device(device_id)
        self.store.delete_individual(device_id)
        self.control.context.event("central", "device deleted", device_id, None, self.now())
        return Reply(204)

    def credentials(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = self._device_view(match["id"])["id"]
        result: dict[str, Any] = {"idScope": self.store.id_scope()}
        individual = self.store.individual(device_id)
        if individual is not None and individual["attestation"] == "x509":
            cert = pki.load_certificate(individual["cert_pem"].encode())
            result["x509"] = {
                "clientCertificates": {"primary": {"info": {"sha1Thumbprint": pki.thumbprint_sha1(cert)}}}
            }
            return Reply(200, result)
        if individual is not None:
            keys = {"primaryKey": individual["primary_key"], "secondaryKey": individual["secondary_key"]}
        else:
            group = self._default_sas_group()
            keys = {
                "primaryKey": derive_device_key(group["primary_key"], device_id),
                "secondaryKey": derive_device_key(group["secondary_key"], device_id),
            }
        result["symmetricKey"] = keys
        return Reply(200, result)

    def _default_sas_group(self) -> dict:
        group = self.store.group(DEFAULT_SAS_GROUP)
        if group is None:
            self.control.create_group(DEFAULT_SAS_GROUP, "sas")
            group = self.store.group(DEFAULT_SAS_GROUP)
        assert group is not None
        return group

    # ------------------------------------------------------------ individual enrollment
    def _attestation_view(self, device_id: str) -> dict:
        row = self.store.individual(device_id)
        if row is None:
            raise ApiError(404, f"Device {device_id!r} has no individual enrollment (attestation).")
        if row["attestation"] == "sas":
            return {
                "type": "symmetricKey",
                "symmetricKey": {"primaryKey": row["primary_key"], "secondaryKey": row["secondary_key"]},
            }
        cert = pki.load_certificate(row["cert_pem"].encode())
        return {
            "type": "x509",
            "x509": {
                "clientCertificates": {"primary": {"info": {"sha1Thumbprint": pki.thumbprint_sha1(cert)}}}
            },
        }

    def get_attestation(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = self._device_view(match["id"])["id"]
        return Reply(200, self._attestation_view(device_id))

    def put_attestation(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = self._device_view(match["id"])["id"]
        kind = body.get("type")
        if kind == "tpm":
            raise ApiError(
                422,
                "TPM attestation is not served here: ESP32 boards have no TPM, and DPS takes TPM "
                "attestation over HTTP or AMQP only, not MQTT.",
            )
        if kind == "symmetricKey":
            keys = body.get("symmetricKey")
            if not isinstance(keys, dict) or not keys.get("primaryKey") or not keys.get("secondaryKey"):
                raise ApiError(422, "symmetricKey needs both primaryKey and secondaryKey.")
            self._replace_individual(device_id, "sas", keys["primaryKey"], keys["secondaryKey"], None)
        elif kind == "x509":
            primary = ((body.get("x509") or {}).get("clientCertificates") or {}).get("primary") or {}
            cert = _certificate_text(
                primary.get("certificate"), "x509.clientCertificates.primary.certificate"
            )
            self._replace_individual(device_id, "x509", None, None, pki.cert_to_pem(cert).decode())
        else:
            raise ApiError(422, "type must be symmetricKey or x509.")
        return Reply(200, self._attestation_view(device_id))

    def _replace_individual(
        self, device_id: str, kind: str, primary: str | None, secondary: str | None, cert: str | None
    ) -> None:
        previous = self.store.individual(device_id)
        self.store.delete_individual(device_id)
        try:
            self.control.enroll(device_id, kind, primary, secondary, cert)
        except ControlError:
            if previous is not None:
                self.store.add_individual(previous)
            raise

    def patch_attestation(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = self._device_view(match["id"])["id"]
        current = self._attestation_view(device_id)
        merged = {**current, **body}
        if merged.get("type") == "symmetricKey" and current.get("type") == "symmetricKey":
            merged["symmetricKey"] = {**current["symmetricKey"], **(body.get("symmetricKey") or {})}
        return self.put_attestation(match, merged, query, base_url)

    def delete_attestation(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = self._device_view(match["id"])["id"]
        if not self.store.delete_individual(device_id):
            raise ApiError(404, f"Device {device_id!r} has no individual enrollment (attestation).")
        return Reply(204)

    def telemetry(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = self._device_view(match["id"])["id"]
        for message in reversed(self.store.telemetry(device_id)):
            try:
                document = json.loads(message["body"] or "")
            except ValueError:
                continue
            if isinstance(document, dict) and match["name"] in document:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(message["time"]))
                stamp += f".{int(message['time'] * 1000) % 1000:03d}Z"
                return Reply(200, {"value": document[match["name"]], "timestamp": stamp})
        return Reply(200, {})

    # ------------------------------------------------------------ enrollment groups
    def _group_row(self, group_id: str) -> dict:
        row = self.store.group(group_id)
        if row is None:
            raise ApiError(404, f"Enrollment group {group_id!r} was not found.")
        return row

    @staticmethod
    def _cert_view(row: dict) -> dict | None:
        if not row["ca_pem"]:
            return None
        cert = pki.load_certificate(row["ca_pem"].encode())
        view = {"verified": bool(row["verified"]), "info": {"sha1Thumbprint": pki.thumbprint_sha1(cert)}}
        return _with_etag(view)

    def _group_view(self, row: dict) -> dict:
        if row["attestation"] == "sas":
            attestation: dict[str, Any] = {
                "type": "symmetricKey",
                "symmetricKey": {"primaryKey": row["primary_key"], "secondaryKey": row["secondary_key"]},
            }
        else:
            certificate = self._cert_view(row)
            attestation = {
                "type": "x509",
                "x509": {"signingCertificates": {"primary": certificate} if certificate else {}},
            }
        return _with_etag(
            {
                "id": row["name"],
                "displayName": row["display_name"] or row["name"],
                "enabled": bool(row["enabled"]),
                "type": row["group_type"] or "iot",
                "attestation": attestation,
            }
        )

    def list_groups(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        self._default_sas_group()
        views = [self._group_view(row) for row in self.store.groups()]
        return self._page(views, query, base_url, "/enrollmentGroups")

    def get_group(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        if match["id"].lower() == DEFAULT_SAS_GROUP.lower():
            self._default_sas_group()
        return Reply(200, self._group_view(self._group_row(match["id"])))

    def put_group(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        group_id = match["id"]
        if not _GROUP_ID.fullmatch(group_id):
            raise ApiError(400, "An enrollment group ID holds 1-128 letters, digits and '-'.")
        display_name = _text(body, "displayName", required=True)
        group_type = _text(body, "type", required=True)
        if group_type not in ("iot", "iotEdge"):
            raise ApiError(422, "type must be iot or iotEdge.")
        enabled = _flag(body, "enabled", True)
        attestation = body.get("attestation")
        kind = attestation.get("type") if isinstance(attestation, dict) else None
        if kind not in ("symmetricKey", "x509"):
            raise ApiError(422, "attestation.type must be symmetricKey or x509.")
        keys = attestation.get("symmetricKey") or {}
        existing = self.store.group(group_id)
        if existing is not None:
            _check_etag(body, self._group_view(existing))
            if (existing["attestation"] == "sas") != (kind == "symmetricKey"):
                raise ApiError(422, "An enrollment group's attestation type cannot change; make a new group.")
            if keys:
                self.store.update_group(
                    group_id,
                    primary_key=keys.get("primaryKey", existing["primary_key"]),
                    secondary_key=keys.get("secondaryKey", existing["secondary_key"]),
                )
        elif kind == "symmetricKey":
            self.control.create_group(group_id, "sas", keys.get("primaryKey"), keys.get("secondaryKey"))
        else:
            self.store.add_group({"name": group_id, "attestation": "x509", "verified": 0})
            self.control.context.event("central", "group created", None, f"x509 group {group_id}", self.now())
        self.store.update_group(
            group_id, display_name=display_name, group_type=group_type, enabled=1 if enabled else 0
        )
        return Reply(200, self._group_view(self._group_row(group_id)))

    def patch_group(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        row = self._group_row(match["id"])
        _check_etag(body, self._group_view(row))
        values: dict[str, Any] = {}
        if "displayName" in body:
            values["display_name"] = _text(body, "displayName")
        if "enabled" in body:
            values["enabled"] = 1 if _flag(body, "enabled") else 0
        if "type" in body:
            if body["type"] not in ("iot", "iotEdge"):
                raise ApiError(422, "type must be iot or iotEdge.")
            values["group_type"] = body["type"]
        if values:
            self.store.update_group(row["name"], **values)
        return Reply(200, self._group_view(self._group_row(row["name"])))

    def delete_group(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        row = self._group_row(match["id"])
        self.store.delete_group(row["name"])
        self.control.context.event("central", "group deleted", None, row["name"], self.now())
        return Reply(204)

    def _x509_group(self, match: dict) -> dict:
        row = self._group_row(match["id"])
        if match["entry"] not in _ENTRIES:
            raise ApiError(404, f"Certificate entry {match['entry']!r}: use primary or secondary.")
        if row["attestation"] != "x509":
            raise ApiError(422, f"Enrollment group {row['name']!r} uses symmetric keys, not certificates.")
        if match["entry"] == "secondary":
            raise ApiError(
                422, "The emulator keeps one certificate per enrollment group: use the primary entry."
            )
        return row

    def get_cert(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        view = self._cert_view(self._x509_group(match))
        if view is None:
            raise ApiError(404, f"Enrollment group {match['id']!r} has no {match['entry']} certificate.")
        return Reply(200, view)

    def put_cert(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        row = self._x509_group(match)
        current = self._cert_view(row)
        if current is not None:
            _check_etag(body, current)
        cert = _certificate_text(body.get("certificate"), "certificate")
        if not pki.is_ca(cert):
            raise ApiError(422, "certificate is not a CA certificate (basic constraints CA:TRUE needed).")
        thumbprint = pki.thumbprint_sha256(cert)
        if any(
            g["ca_thumbprint"] == thumbprint and g["name"] != row["name"] for g in self.store.groups("x509")
        ):
            raise ApiError(409, "Another enrollment group holds this certificate already.")
        verified = _flag(body, "verified", False)
        pem = pki.cert_to_pem(cert).decode()
        self.store.update_group(
            row["name"],
            ca_pem=pem,
            ca_thumbprint=thumbprint,
            verified=1 if verified else 0,
            verification_code=None,
        )
        self.control.trust(pem)
        self.control.context.event("central", "group certificate", None, row["name"], self.now())
        return Reply(200, self._cert_view(self._group_row(row["name"])))

    def delete_cert(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        row = self._x509_group(match)
        if not row["ca_pem"]:
            raise ApiError(404, f"Enrollment group {row['name']!r} has no {match['entry']} certificate.")
        self.store.update_group(
            row["name"], ca_pem=None, ca_thumbprint=None, verified=0, verification_code=None
        )
        return Reply(204)

    def verification_code(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        row = self._x509_group(match)
        if not row["ca_pem"]:
            raise ApiError(404, f"Enrollment group {row['name']!r} has no {match['entry']} certificate yet.")
        code = secrets.token_hex(24).upper()
        self.store.update_group(row["name"], verification_code=code)
        return Reply(200, {"verificationCode": code})

    def verify(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        row = self._x509_group(match)
        if not row["ca_pem"] or not row["verification_code"]:
            raise ApiError(422, "Ask for a verification code first (generateVerificationCode), then sign it.")
        self.control.verify_group(
            row["name"], pki.cert_to_pem(_certificate_text(body.get("certificate"), "certificate")).decode()
        )
        return Reply(204)

    # ------------------------------------------------------------ device templates
    def list_templates(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        views = [_with_etag(t) for t in self.templates.values()]
        return self._page(views, query, base_url, "/deviceTemplates")

    def get_template(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        template = self.templates.get(match["id"].lower())
        if template is None:
            raise ApiError(404, f"Device template {match['id']!r} was not found.")
        return Reply(200, _with_etag(template))


def _packaged_templates() -> dict[str, dict]:
    from iotcprov.resources import firmware_dir

    return load_templates(firmware_dir() / "models")


def build(control: Control, **kwargs: Any) -> web.Application:
    """The aiohttp application serving the API; the emulator mounts it at `/api`."""
    from aiohttp import web

    api = CentralApi(control, **kwargs)

    async def dispatch(request: web.Request) -> web.Response:
        raw = await request.read()
        base_url = f"{request.scheme}://{request.host}/api"
        reply = api.handle(
            request.method, "/" + request.match_info["tail"], request.query, request.headers, raw, base_url
        )
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app["central_api"] = api
    return app
