"""The enrollment groups and device templates of the emulator's IoT Central API, X.509 proof of
possession included; a part of `central_api.CentralApi`."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from iotcprov.credentials import pki
from iotcprov.emulator.central_common import (
    DEFAULT_SAS_GROUP,
    ENTRIES,
    GROUP_ID,
    ApiError,
    Reply,
    certificate_text,
    check_etag,
    flag,
    text_field,
    with_etag,
)


class GroupEndpoints:
    """/enrollmentGroups/... and /deviceTemplates/...: mixed into CentralApi."""

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
        return with_etag(view)

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
        return with_etag(
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
        if not GROUP_ID.fullmatch(group_id):
            raise ApiError(400, "An enrollment group ID holds 1-128 letters, digits and '-'.")
        display_name = text_field(body, "displayName", required=True)
        group_type = text_field(body, "type", required=True)
        if group_type not in ("iot", "iotEdge"):
            raise ApiError(422, "type must be iot or iotEdge.")
        enabled = flag(body, "enabled", True)
        attestation = body.get("attestation")
        kind = attestation.get("type") if isinstance(attestation, dict) else None
        if kind not in ("symmetricKey", "x509"):
            raise ApiError(422, "attestation.type must be symmetricKey or x509.")
        keys = attestation.get("symmetricKey") or {}
        existing = self.store.group(group_id)
        if existing is not None:
            check_etag(body, self._group_view(existing))
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
        check_etag(body, self._group_view(row))
        values: dict[str, Any] = {}
        if "displayName" in body:
            values["display_name"] = text_field(body, "displayName")
        if "enabled" in body:
            values["enabled"] = 1 if flag(body, "enabled") else 0
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
        if match["entry"] not in ENTRIES:
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
            check_etag(body, current)
        cert = certificate_text(body.get("certificate"), "certificate")
        if not pki.is_ca(cert):
            raise ApiError(422, "certificate is not a CA certificate (basic constraints CA:TRUE needed).")
        thumbprint = pki.thumbprint_sha256(cert)
        if any(
            g["ca_thumbprint"] == thumbprint and g["name"] != row["name"] for g in self.store.groups("x509")
        ):
            raise ApiError(409, "Another enrollment group holds this certificate already.")
        verified = flag(body, "verified", False)
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
            row["name"], pki.cert_to_pem(certificate_text(body.get("certificate"), "certificate")).decode()
        )
        return Reply(204)

    # ------------------------------------------------------------ device templates
    def list_templates(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        views = [with_etag(t) for t in self.templates.values()]
        return self._page(views, query, base_url, "/deviceTemplates")

    def get_template(self, match: dict, body: dict, query: Mapping[str, str], base_url: str) -> Reply:
        template = self.templates.get(match["id"].lower())
        if template is None:
            raise ApiError(404, f"Device template {match['id']!r} was not found.")
        return Reply(200, with_etag(template))


