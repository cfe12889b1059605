"""The IoT Central operations iotcprov uses, over `CentralClient` (docs/central.md).

Paths and bodies follow the reference for api-version 2022-07-31. Functions return the service's
JSON (keys included where the service sends them); what is shown of them is the caller's choice.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from iotcprov.central.client import CentralClient
from iotcprov.credentials import pki
from iotcprov.credentials.keys import generate_key
from iotcprov.credentials.pki_files import Issuer
from iotcprov.errors import InputError, OperationError
from iotcprov.validation import validate_device_id, validate_key

GROUP_ENTRY = "primary"  # the certificate entry iotcprov uses for an X.509 group's CA


def _device(device_id: str) -> str:
    validate_device_id(device_id)
    return f"device {device_id!r}"


def certificate_field(cert: Any) -> str:
    """A certificate as the API takes it: base64 of its whole PEM text, on one line."""
    return base64.b64encode(pki.cert_to_pem(cert)).decode()


# ---------------------------------------------------------------- devices


def list_devices(client: CentralClient) -> list[dict]:
    return client.list("/devices", what="the device list")


def get_device(client: CentralClient, device_id: str) -> dict:
    return client.request("GET", f"/devices/{device_id}", what=_device(device_id))


def find_device(client: CentralClient, device_id: str) -> dict | None:
    return client.get_or_none(f"/devices/{device_id}", what=_device(device_id))


def create_device(
    client: CentralClient, device_id: str, display_name: str | None = None, template: str | None = None
) -> dict:
    """Create (or update) a real device, approved: `enabled` true, never simulated."""
    body: dict[str, Any] = {"displayName": display_name or device_id, "enabled": True, "simulated": False}
    if template:
        body["template"] = template
    return client.request("PUT", f"/devices/{device_id}", body, what=_device(device_id))


def set_enabled(client: CentralClient, device_id: str, enabled: bool) -> dict:
    """Approve (or unblock) a device, or block it: PATCH {"enabled": ...}."""
    return client.request("PATCH", f"/devices/{device_id}", {"enabled": enabled}, what=_device(device_id))


def delete_device(client: CentralClient, device_id: str) -> None:
    client.request("DELETE", f"/devices/{device_id}", what=_device(device_id))


def credentials(client: CentralClient, device_id: str) -> dict:
    """{"idScope", "symmetricKey"?: {primaryKey, secondaryKey}, "x509"?: {...}}: secrets inside."""
    return client.request("GET", f"/devices/{device_id}/credentials", what=_device(device_id))


def id_scope_in(found: dict, client: CentralClient, device_id: str) -> str:
    """The ID scope in a device's `credentials` answer (the GA API gives it nowhere else)."""
    scope = found.get("idScope")
    if not isinstance(scope, str) or not scope:
        raise OperationError(f"IoT Central {client.app.host}: the credentials of {device_id} hold no idScope")
    return scope


def primary_key_in(found: dict, client: CentralClient, device_id: str, fix: str = "") -> str:
    """The device's primary key in its `credentials` answer; `fix` ends the error of a device
    enrolled with a certificate."""
    key = (found.get("symmetricKey") or {}).get("primaryKey")
    if not key:
        raise OperationError(
            f"IoT Central {client.app.host}: device {device_id} has no symmetric keys (it is enrolled "
            f"with a certificate){fix}"
        )
    return key


def enroll_sas(
    client: CentralClient, device_id: str, primary_key: str | None = None, secondary_key: str | None = None
) -> dict:
    """An individual enrollment with the device's own keys (the API requires both; a key not given
    is generated here, from the OS CSPRNG)."""
    primary_key = primary_key or generate_key()
    secondary_key = secondary_key or generate_key()
    validate_key(primary_key, "--primary-key")
    validate_key(secondary_key, "--secondary-key")
    body = {
        "type": "symmetricKey",
        "symmetricKey": {"primaryKey": primary_key.strip(), "secondaryKey": secondary_key.strip()},
    }
    return client.request("PUT", f"/devices/{device_id}/attestation", body, what=_device(device_id))


def enroll_x509(client: CentralClient, device_id: str, cert: Any) -> dict:
    """An individual enrollment with the device's certificate (subject CN = the device ID)."""
    if pki.common_name(cert).lower() != device_id.lower():
        raise InputError(
            f"--cert: the certificate's subject CN is {pki.common_name(cert)!r}, not the device ID "
            f"{device_id!r}; IoT Central requires them equal"
        )
    body = {
        "type": "x509",
        "x509": {"clientCertificates": {"primary": {"certificate": certificate_field(cert)}}},
    }
    return client.request("PUT", f"/devices/{device_id}/attestation", body, what=_device(device_id))


def last_telemetry(client: CentralClient, device_id: str, name: str) -> dict | None:
    """{"value", "timestamp"} of the device's last `name` telemetry, or None if it sent none."""
    answer = client.get_or_none(f"/devices/{device_id}/telemetry/{name}", what=f"telemetry {name!r}")
    return answer if isinstance(answer, dict) and "value" in answer else None


# ---------------------------------------------------------------- enrollment groups


def list_groups(client: CentralClient) -> list[dict]:
    return client.list("/enrollmentGroups", what="the enrollment group list")


def get_group(client: CentralClient, group_id: str) -> dict:
    return client.request("GET", f"/enrollmentGroups/{group_id}", what=f"enrollment group {group_id!r}")


def create_group(
    client: CentralClient,
    group_id: str,
    display_name: str | None,
    x509: bool,
    ca_cert: Any = None,
) -> dict:
    """A SAS group (the service generates its keys) or an X.509 group, with its CA uploaded
    (unverified: `verify_group` proves possession) when `ca_cert` is given."""
    what = f"enrollment group {group_id!r}"
    body = {
        "displayName": display_name or group_id,
        "enabled": True,
        "type": "iot",
        "attestation": {"type": "x509" if x509 else "symmetricKey"},
    }
    group = client.request("PUT", f"/enrollmentGroups/{group_id}", body, what=what)
    if x509 and ca_cert is not None:
        upload_ca(client, group_id, ca_cert)
        group = get_group(client, group_id)
    return group


def upload_ca(client: CentralClient, group_id: str, ca_cert: Any) -> dict:
    if not pki.is_ca(ca_cert):
        raise InputError("--ca-cert: not a CA certificate; give the root or intermediate that issues devices")
    return client.request(
        "PUT",
        f"/enrollmentGroups/{group_id}/certificates/{GROUP_ENTRY}",
        {"certificate": certificate_field(ca_cert)},
        what=f"enrollment group {group_id!r}",
    )


def group_certificate(client: CentralClient, group_id: str) -> dict | None:
    return client.get_or_none(
        f"/enrollmentGroups/{group_id}/certificates/{GROUP_ENTRY}", what=f"enrollment group {group_id!r}"
    )


@dataclass(frozen=True)
class Verified:
    group_id: str
    thumbprint: str
    verified: bool
    uploaded: bool  # the CA was uploaded first (the group had none, or another one)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def verify_group(client: CentralClient, group_id: str, issuer: Issuer) -> Verified:
    """The whole proof of possession for the group's CA: upload it when the group holds another
    (or none), ask for a verification code, sign a certificate for it with the CA key, submit it."""
    what = f"enrollment group {group_id!r}"
    base = f"/enrollmentGroups/{group_id}/certificates/{GROUP_ENTRY}"
    thumbprint = pki.thumbprint_sha1(issuer.cert)
    current = group_certificate(client, group_id)
    uploaded = (current or {}).get("info", {}).get("sha1Thumbprint", "").upper() != thumbprint
    if uploaded:
        upload_ca(client, group_id, issuer.cert)
    answer = client.request("POST", f"{base}/generateVerificationCode", what=what)
    code = (answer or {}).get("verificationCode")
    if not isinstance(code, str) or not code:
        raise InputError(f"IoT Central {client.app.host}: no verification code came back for {what}")
    proof = pki.make_verification_cert(code, issuer.cert, issuer.key)
    client.request("POST", f"{base}/verify", {"certificate": certificate_field(proof)}, what=what)
    after = group_certificate(client, group_id) or {}
    return Verified(group_id, thumbprint, bool(after.get("verified")), uploaded)


# ---------------------------------------------------------------- templates and status


def list_templates(client: CentralClient) -> list[dict]:
    return client.list("/deviceTemplates", what="the device template list")


def telemetry_names(template: dict) -> list[str]:
    """Telemetry names a template's model declares (its root interface; components are not read)."""
    model = template.get("capabilityModel") or {}
    names = []
    for item in model.get("contents") or []:
        kinds = item.get("@type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "Telemetry" in kinds and isinstance(item.get("name"), str):
            names.append(item["name"])
    return names


def state_of(device: dict) -> str:
    """IoT Central's status from `enabled` and `provisioned` (the API cannot tell waiting for
    approval from blocked while a device has not provisioned)."""
    if not device.get("enabled"):
        return "blocked" if device.get("provisioned") else "waiting for approval (or blocked)"
    return "provisioned" if device.get("provisioned") else "registered (not provisioned yet)"


def status(client: CentralClient, device_id: str, names: list[str] | None = None) -> dict:
    """The device, its status, template, and the last value of each telemetry field: those named,
    else those its template declares. (The API has no "connected now" field.)"""
    device = get_device(client, device_id)
    template_id = device.get("template")
    if not names and template_id:
        template = client.get_or_none(f"/deviceTemplates/{template_id}", what=f"template {template_id!r}")
        names = telemetry_names(template) if template else []
    telemetry = {}
    for name in names or []:
        telemetry[name] = last_telemetry(client, device_id, name)
    return {
        "device_id": device.get("id", device_id),
        "display_name": device.get("displayName"),
        "status": state_of(device),
        "enabled": bool(device.get("enabled")),
        "provisioned": bool(device.get("provisioned")),
        "template": template_id,
        "telemetry": telemetry,
    }
