"""The operations behind the admin API and CLI: enrollments, devices, twins, methods, C2D, faults.

Runs inside the server's event loop. Errors are `ControlError(status, message)`: the admin API
answers them with that HTTP status and the CLI turns them into InputError/OperationError.
Responses never include a key except where the caller asked for one (creating a SAS enrollment).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from iotcprov.credentials import keys, pki
from iotcprov.emulator import jsonbody
from iotcprov.emulator.faults import PARAMETERS, FaultError
from iotcprov.emulator.hub import MAX_TWIN_DEPTH, DeviceOffline, HubRegistry
from iotcprov.emulator.session import Context
from iotcprov.errors import InputError
from iotcprov.validation import validate_device_id, validate_key

if TYPE_CHECKING:
    from cryptography import x509

_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# IoT Central's built-in roles: role name -> role ID
ROLES = {
    "administrator": "ca310b8d-2f4a-44e0-a36e-957c202cd8d4",
    "builder": "344138e9-8de4-4497-8c54-5237e96d6aaf",
    "operator": "ae2c9854-393b-4f97-8c42-479d70ce626e",
}
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-._]{0,127}")


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> ControlError:
    return ControlError(400, message)


def _checked_key(value: str | None, field: str) -> str:
    if value is None:
        return keys.generate_key()  # 64 bytes, as IoT Central's
    try:
        validate_key(value, field)
    except InputError as error:
        raise _bad(str(error)) from None
    return value.strip()


def _sas_keys(primary_key: str | None, secondary_key: str | None) -> dict[str, str]:
    """The two keys of a new SAS enrollment: the ones given, checked, or generated."""
    return {
        "primary_key": _checked_key(primary_key, "primary_key"),
        "secondary_key": _checked_key(secondary_key, "secondary_key"),
    }


def _certificate(pem: str | None, field: str) -> x509.Certificate:
    if not pem:
        raise _bad(f"{field}: give a certificate (PEM or base64 DER)")
    try:
        data = pem.encode() if "-----BEGIN" in pem else base64.b64decode(pem)
        return pki.load_certificate(data)
    except ValueError:
        raise _bad(f"{field}: not a readable X.509 certificate") from None


class Control:
    def __init__(
        self,
        context: Context,
        registry: HubRegistry,
        info: dict,
        trust: Callable[[str], None],
        open_connections: Callable[[], int] = lambda: 0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.context = context
        self.store = context.store
        self.registry = registry
        self.info_record = info
        self.trust = trust
        self.open_connections = open_connections
        self.now = now
        self.started = now()
        self._telemetry_changed = asyncio.Event()
        registry.telemetry_listeners.append(lambda device: self._telemetry_changed.set())

    def info(self) -> dict:
        return self.info_record

    # ------------------------------------------------------------ the IoT Central application
    def app_id(self) -> str:
        """The emulated application's ID (the `sr` of its API tokens), made once per data folder."""
        app_id = self.store.meta("app_id")
        if app_id is None:
            app_id = str(uuid.uuid4())
            self.store.set_meta("app_id", app_id)
        return app_id

    def settings(self) -> dict:
        return {"auto_approve": self.context.config.auto_approve}

    def set_settings(self, auto_approve: Any = None) -> dict:
        if auto_approve is not None:
            if not isinstance(auto_approve, bool):
                raise _bad("auto_approve: give true or false")
            self.context.config.auto_approve = auto_approve
            state = "on" if auto_approve else "off"
            self.context.event("admin", "settings", None, f"automatic approval {state}", self.now())
        return self.settings()

    def create_api_token(self, token_id: str, role: str | None = None, days: float = 365) -> dict:
        """An IoT Central API token for this application, returned this once (only a hash is kept)."""
        if not isinstance(token_id, str) or not _TOKEN_ID.fullmatch(token_id):
            raise _bad("token_id: use 1-128 letters, digits, '-' or '_'")
        role = role or "administrator"
        if role not in ROLES:
            raise _bad(f"role: use one of {', '.join(ROLES)}")
        if not isinstance(days, int | float) or not 0 < days <= 3650:
            raise _bad("days: give 1..3650")
        expiry_ms = int((self.now() + days * 86400) * 1000)
        signature = base64.b64encode(secrets.token_bytes(32)).decode()
        token = "SharedAccessSignature " + "&".join(
            [
                f"sr={self.app_id()}",
                f"sig={urllib.parse.quote(signature, safe='')}",
                f"skn={token_id}",
                f"se={expiry_ms}",
            ]
        )
        roles = [{"role": ROLES[role]}]
        self.store.add_api_token(token_id, hashlib.sha256(token.encode()).hexdigest(), roles, expiry_ms)
        self.context.event("admin", "API token created", None, token_id, self.now())
        expiry = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expiry_ms / 1000))
        expiry += f".{expiry_ms % 1000:03d}Z"
        return {"id": token_id, "roles": roles, "expiry": expiry, "token": token}

    # ------------------------------------------------------------ enrollment groups
    def create_group(
        self,
        name: str,
        attestation: str,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        ca_cert: str | None = None,
    ) -> dict:
        if not isinstance(name, str) or not _GROUP_NAME.fullmatch(name):
            raise _bad("name: use 1-128 letters, digits, '-', '.' or '_'")
        if self.store.group(name):
            raise ControlError(409, f"name: a group named {name!r} exists already")
        if attestation == "sas":
            row = {"name": name, "attestation": "sas", **_sas_keys(primary_key, secondary_key)}
            self.store.add_group(row)
            self.context.event("admin", "group created", None, f"sas group {name}", self.now())
            return row  # the keys: the caller creating the group asked for them
        if attestation != "x509":
            raise _bad("attestation: use sas or x509")
        ca = _certificate(ca_cert, "ca_cert")
        if not pki.is_ca(ca):
            raise _bad("ca_cert: not a CA certificate (basic constraints CA:TRUE needed)")
        thumbprint = pki.thumbprint_sha256(ca)
        if any(g["ca_thumbprint"] == thumbprint for g in self.store.groups("x509")):
            raise ControlError(409, "ca_cert: another enrollment group holds this CA already")
        code = secrets.token_hex(24).upper()
        pem = pki.cert_to_pem(ca).decode()
        self.store.add_group(
            {
                "name": name,
                "attestation": "x509",
                "ca_pem": pem,
                "ca_thumbprint": thumbprint,
                "verification_code": code,
                "verified": 0,
            }
        )
        self.trust(pem)
        self.context.event("admin", "group created", None, f"x509 group {name}", self.now())
        return {
            "name": name,
            "attestation": "x509",
            "ca_thumbprint": thumbprint,
            "verified": False,
            "verification_code": code,
        }

    def verify_group(self, name: str, cert: str | None) -> dict:
        group = self._group(name)
        if group["attestation"] != "x509":
            raise _bad("name: only X.509 groups are verified")
        if not group["ca_pem"] or not group["verification_code"]:
            raise _bad("name: the group has no CA certificate to verify yet")
        proof = _certificate(cert, "cert")
        if pki.common_name(proof) != group["verification_code"]:
            raise _bad("cert: subject CN is not the group's verification code")
        if not pki.issued_by(proof, pki.load_certificate(group["ca_pem"].encode())):
            raise _bad("cert: not signed by the group's CA key (proof of possession failed)")
        self.store.update_group(name, verified=1)
        self.context.event("admin", "group verified", None, f"x509 group {name}", self.now())
        return self._group_view(self._group(name))

    def set_group_enabled(self, name: str, enabled: bool) -> dict:
        self._group(name)
        self.store.update_group(name, enabled=1 if enabled else 0)
        self.context.event("admin", "group enabled" if enabled else "group disabled", None, name, self.now())
        return self._group_view(self._group(name))

    def groups(self) -> list[dict]:
        return [self._group_view(g) for g in self.store.groups()]

    def _group(self, name: str) -> dict:
        group = self.store.group(name) if isinstance(name, str) else None
        if group is None:
            raise ControlError(404, f"name: no enrollment group {name!r}")
        return group

    @staticmethod
    def _group_view(group: dict) -> dict:
        view = {"name": group["name"], "attestation": group["attestation"], "enabled": bool(group["enabled"])}
        if group["attestation"] == "x509":
            view.update(
                ca_thumbprint=group["ca_thumbprint"],
                verified=bool(group["verified"]),
                verification_code=group["verification_code"],
            )
        return view

    # ------------------------------------------------------------ individual enrollments
    def enroll(
        self,
        device_id: str,
        attestation: str,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        cert: str | None = None,
    ) -> dict:
        try:
            validate_device_id(device_id, "device_id")
        except InputError as error:
            raise _bad(str(error)) from None
        if self.store.individual(device_id):
            raise ControlError(409, f"device_id: {device_id!r} has an individual enrollment already")
        if attestation == "sas":
            row = {"device_id": device_id, "attestation": "sas", **_sas_keys(primary_key, secondary_key)}
            self.store.add_individual(row)
            self.context.event("admin", "enrolled", device_id, "individual sas", self.now())
            return row  # the keys: the caller enrolling the device asked for them
        if attestation != "x509":
            raise _bad("attestation: use sas or x509")
        certificate = _certificate(cert, "cert")
        if (pki.common_name(certificate) or "").lower() != device_id.lower():
            raise _bad("cert: subject CN must be the device ID")
        pem = pki.cert_to_pem(certificate).decode()
        thumbprint = pki.thumbprint_sha256(certificate)
        self.store.add_individual(
            {"device_id": device_id, "attestation": "x509", "cert_pem": pem, "thumbprint": thumbprint}
        )
        self.trust(pem)
        self.context.event("admin", "enrolled", device_id, "individual x509", self.now())
        return {"device_id": device_id, "attestation": "x509", "thumbprint": thumbprint}

    def set_enrollment_enabled(self, device_id: str, enabled: bool) -> dict:
        if not self.store.individual(device_id):
            raise ControlError(404, f"device_id: no individual enrollment {device_id!r}")
        self.store.update_individual(device_id, enabled=1 if enabled else 0)
        self.context.event(
            "admin", "enrollment enabled" if enabled else "enrollment disabled", device_id, None, self.now()
        )
        row = self.store.individual(device_id)
        return {
            "device_id": row["device_id"],
            "attestation": row["attestation"],
            "enabled": bool(row["enabled"]),
        }

    def enrollments(self) -> list[dict]:
        return [
            {
                "device_id": r["device_id"],
                "attestation": r["attestation"],
                "enabled": bool(r["enabled"]),
                **({"thumbprint": r["thumbprint"]} if r["thumbprint"] else {}),
            }
            for r in self.store.individuals()
        ]

    # ------------------------------------------------------------ devices
    def _device_row(self, device_id: str) -> dict:
        row = self.store.device(device_id) if isinstance(device_id, str) else None
        if row is None:
            raise ControlError(404, f"device_id: no device {device_id!r} has registered")
        return row

    def _device_view(self, row: dict) -> dict:
        session = self.registry.session(row["device_id"])
        return {
            "device_id": row["device_id"],
            "status": row["status"],
            "assigned_hub": row["assigned_hub"],
            "enrollment": {
                "kind": row["enrollment_kind"],
                "name": row["enrollment_name"],
                "attestation": row["attestation"],
            },
            "registrations": row["registrations"],
            "last_registration": row["last_registration"],
            "model_id": row["hub_model_id"] or row["dps_model_id"],
            "dps_model_id": row["dps_model_id"],
            "hub_model_id": row["hub_model_id"],
            "dps_payload": json.loads(row["dps_payload"]) if row["dps_payload"] else None,
            "connected": bool(row["connected"]),
            "hub_connections": row["hub_connections"],
            "last_connected": row["last_connected"],
            "last_disconnected": row["last_disconnected"],
            "disconnect_reason": row["disconnect_reason"],
            "messages": row["messages"],
            "last_message": row["last_message"],
            "twin": self.store.twin(row["device_id"]),
            "c2d_queued": len(self.store.pending_c2d(row["device_id"])),
            "subscriptions": sorted(session.subscriptions) if session else [],
        }

    def devices(self) -> list[dict]:
        return [self._device_view(row) for row in self.store.devices()]

    def device(self, device_id: str) -> dict:
        return self._device_view(self._device_row(device_id))

    async def telemetry(
        self, device_id: str, wait: float | None = None, limit: int = 200, after: int = 0
    ) -> list[dict]:
        """Stored telemetry; with `wait`, up to that long for some, even from a device that has
        yet to register (404 only if it still has not when the wait ends)."""
        deadline = self.now() + (wait or 0)
        while True:
            self._telemetry_changed.clear()
            registered = isinstance(device_id, str) and self.store.device(device_id) is not None
            messages = self.store.telemetry(device_id, limit, after) if registered else []
            remaining = deadline - self.now()
            if messages or not wait or remaining <= 0:
                if not registered:
                    self._device_row(device_id)  # raises the 404
                return messages
            # any device's telemetry wakes this up; the device must register before it sends any
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._telemetry_changed.wait(), remaining)

    def set_desired(self, device_id: str, patch: Any) -> dict:
        row = self._device_row(device_id)
        if not isinstance(patch, dict):
            raise _bad("patch: give a JSON object")
        if jsonbody.depth(patch) > MAX_TWIN_DEPTH + 1:  # + 1: the patch object itself
            raise _bad(f"patch: objects nest at most {MAX_TWIN_DEPTH} levels in a twin")
        version = self.store.patch_twin_side(row["device_id"], "desired", patch)
        session = self.registry.session(device_id)
        delivered = bool(session and session.push_desired(patch, version))
        self.context.event("hub", "desired patch", row["device_id"], f"$version {version}", self.now())
        return {"$version": version, "delivered": delivered}

    async def invoke(self, device_id: str, command: str, payload: Any = None, timeout: float = 30) -> dict:
        row = self._device_row(device_id)
        if not isinstance(command, str) or not command or "/" in command or "?" in command:
            raise _bad("command: give a method name without '/' or '?'")
        if not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise _bad("timeout: give 1..300 seconds")
        session = self.registry.session(device_id)
        if session is None:
            return {"status": 404, "payload": {"message": "device is not connected"}}
        result: asyncio.Future = asyncio.get_running_loop().create_future()
        rid = self.registry.expect_method_response(
            row["device_id"], lambda status, body: result.done() or result.set_result((status, body))
        )
        try:
            session.start_method(command, payload, rid)
        except DeviceOffline as error:
            self.registry.forget_method(row["device_id"], rid)
            return {"status": 404, "payload": {"message": str(error)}}
        try:
            status, body = await asyncio.wait_for(result, timeout)
        except TimeoutError:
            self.registry.forget_method(row["device_id"], rid)
            self.context.event("hub", "method timeout", row["device_id"], command, self.now())
            return {"status": 504, "payload": {"message": f"device did not answer within {timeout} s"}}
        self.context.event("hub", "method answered", row["device_id"], f"{command} -> {status}", self.now())
        return {"status": status, "payload": body}

    def send_c2d(
        self, device_id: str, body: str | None, properties: dict | None = None, body_base64: str | None = None
    ) -> dict:
        row = self._device_row(device_id)
        properties = properties or {}
        if not isinstance(properties, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in properties.items()
        ):
            raise _bad("properties: give an object of string values")
        raw = base64.b64decode(body_base64) if body_base64 is not None else (body or "").encode()
        bag = {
            "$.mid": secrets.token_hex(8),
            "$.to": f"/devices/{row['device_id']}/messages/deviceBound",
            **properties,
        }
        message_id = self.store.enqueue_c2d(row["device_id"], raw, bag, self.now())
        session = self.registry.session(device_id)
        if session is not None:
            session.deliver_c2d()
        queued = any(m["id"] == message_id for m in self.store.pending_c2d(row["device_id"]))
        return {"id": message_id, "message_id": bag["$.mid"], "queued": queued}

    # ------------------------------------------------------------ faults, events, stats
    def add_fault(self, kind: str, **fields: Any) -> dict:
        unknown = set(fields) - {"endpoint", "device", "count", *PARAMETERS}
        if unknown:
            raise _bad(f"{', '.join(sorted(unknown))}: not a fault field")
        try:
            fault = self.context.faults.add(kind, self.now(), **fields)
        except FaultError as error:
            raise _bad(str(error)) from None
        self.context.event(
            "admin", "fault added", fault["device"], f"{kind} {json.dumps(fault['params'])}", self.now()
        )
        if kind == "outage":
            self.registry.kick_all("fault: outage")
        return fault

    def faults(self) -> list[dict]:
        return self.context.faults.list(self.now())

    def clear_faults(self, fault_id: int | None = None) -> dict:
        return {"cleared": self.context.faults.clear(fault_id)}

    def events(
        self, after: int = 0, kind: str | None = None, device: str | None = None, limit: int = 1000
    ) -> list[dict]:
        return self.store.events(after, kind, device, limit)

    def stats(self) -> dict:
        counters = self.store.counters()
        devices = self.store.devices()
        return {
            "uptime": self.now() - self.started,
            "counters": counters,
            "tls_handshakes": {
                "dps": counters.get("dps.tls_handshakes", 0),
                "hub": counters.get("hub.tls_handshakes", 0),
            },
            "devices": len(devices),
            "connected": len(self.registry.sessions),
            "open_connections": self.open_connections(),  # DPS and hub, TLS handshakes included
            "registrations": sum(d["registrations"] for d in devices),
            "telemetry_stored": self.store.telemetry_count(),
            "telemetry_received": self.registry.telemetry_received,
        }
