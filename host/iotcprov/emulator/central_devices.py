"""The devices of the emulator's IoT Central API: devices, credentials, attestation (individual
enrollments) and last telemetry values; a part of `central_api.CentralApi`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from iotcprov.credentials import pki
from iotcprov.credentials.sas import derive_device_key
from iotcprov.emulator.central_common import (
    DEFAULT_SAS_GROUP,
    DEVICE_ID,
    ApiError,
    Reply,
    certificate_text,
    check_etag,
    flag,
    text_field,
    with_etag,
)
from iotcprov.emulator.control import ControlError
from iotcprov.emulator.session import Close


class DeviceEndpoints:
    """/devices/...: mixed into CentralApi, whose control, store and templates they use."""

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
        return with_etag(view)

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
            values["display_name"] = text_field(body, "displayName")
        if "template" in body:
            template = text_field(body, "template")
            if template is not None and template.lower() not in self.templates:
                raise ApiError(400, f"template {template!r} is not a published device template.")
            values["template"] = self.templates[template.lower()]["@id"] if template else None
        if "simulated" in body:
            if flag(body, "simulated"):
                raise ApiError(422, "The emulator has no simulated devices; create a real one.")
            values["simulated"] = 0
        if "enabled" in body:
            values["enabled"] = 1 if flag(body, "enabled") else 0
        if "organizations" in body:
            organizations = body["organizations"]
            if not isinstance(organizations, list) or not all(isinstance(o, str) for o in organizations):
                raise ApiError(422, "organizations must be a list of organization IDs.")
            values["organizations"] = json.dumps(organizations)
        return values

    def put_device(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = match["id"]
        if not DEVICE_ID.fullmatch(device_id):
            raise ApiError(400, "A device ID holds 1-128 letters, digits and '-'.")
        existing = self._existing_device(device_id)
        if existing is not None:
            check_etag(body, existing)
        values = {"enabled": 1, **self._device_values(body)}
        self.store.put_app_device(device_id, **values)
        self._after_enabled_change(device_id, values)
        kind = "device created" if existing is None else "device updated"
        self.control.context.event("central", kind, device_id, None, self.now())
        return Reply(200, self._device_view(device_id))

    def patch_device(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        device_id = match["id"]
        current = self._device_view(device_id)
        check_etag(body, current)
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
            cert = certificate_text(
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
