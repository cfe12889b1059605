"""Who is connecting: the DPS and hub credential checks (docs/protocol.md sections 1-3).

Pure functions over store rows, the CONNECT fields, the client certificate and a clock value.
A refusal carries a reason fit for the event log: it names what is wrong, never a key or token.
"""

from __future__ import annotations

import functools
import urllib.parse
from dataclasses import dataclass

from cryptography import x509

from iotcprov.credentials import pki
from iotcprov.credentials.sas import (
    DPS_POLICY,
    SasTokenError,
    derive_device_key,
    dps_resource,
    hub_resource,
    parse_token,
    verify_token,
)
from iotcprov.emulator import certs
from iotcprov.emulator.mqtt_codec import REFUSED_BAD_USERNAME_PASSWORD, REFUSED_NOT_AUTHORIZED
from iotcprov.emulator.store import Store
from iotcprov.errors import InputError
from iotcprov.validation import validate_registration_id


class Refusal(Exception):
    """A CONNECT that must be refused with `return_code`; `reason` is safe to log."""

    def __init__(self, reason: str, return_code: int = REFUSED_NOT_AUTHORIZED, device: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.return_code = return_code
        self.device = device


@dataclass(frozen=True)
class Enrollment:
    """The enrollment a device authenticated through."""

    kind: str  # "individual" | "group"
    name: str  # device ID for individual enrollments, group name for groups
    attestation: str  # "sas" | "x509"
    enabled: bool


@dataclass(frozen=True)
class DpsIdentity:
    registration_id: str
    enrollment: Enrollment


@dataclass(frozen=True)
class HubIdentity:
    device_id: str
    model_id: str | None
    token_expiry: float | None  # None for X.509


@dataclass
class PeerCertificate:
    """What TLS tells about the client: the leaf and, where Python exposes it, the verified chain."""

    leaf: x509.Certificate
    chain: list[x509.Certificate]  # leaf first; may hold the leaf alone


# ---------------------------------------------------------------- user names


def parse_dps_username(username: str | None) -> tuple[str, str, dict[str, str]]:
    """`{idScope}/registrations/{registrationId}/api-version=...` → (scope, registration ID, params)."""
    parts = (username or "").split("/", 3)
    if len(parts) < 3 or parts[1] != "registrations" or not parts[0] or not parts[2]:
        raise Refusal(
            "user name is not {idScope}/registrations/{registrationId}/api-version=...",
            REFUSED_BAD_USERNAME_PASSWORD,
        )
    query = parts[3].lstrip("?") if len(parts) == 4 else ""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if "api-version" not in params:
        raise Refusal("user name lacks api-version", REFUSED_BAD_USERNAME_PASSWORD)
    return parts[0], parts[2], params


def parse_hub_username(username: str | None) -> tuple[str, str, dict[str, str]]:
    """`{hub}/{deviceId}/?api-version=...&model-id=...` → (hub, device ID, params)."""
    path, _, query = (username or "").partition("/?")
    hub, _, device_id = path.partition("/")
    if not hub or not device_id or "/" in device_id:
        raise Refusal("user name is not {hub}/{deviceId}/?api-version=...", REFUSED_BAD_USERNAME_PASSWORD)
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    if "api-version" not in params:
        raise Refusal("user name lacks api-version", REFUSED_BAD_USERNAME_PASSWORD)
    return hub, device_id, params


# ---------------------------------------------------------------- SAS


def _check_sas(token: str, keys: list[str], resource: str, now: float, device: str) -> None:
    """Accept the token if any key signed it; otherwise refuse with the first key's reason."""
    first: SasTokenError | None = None
    for key in keys:
        try:
            verify_token(token, key, resource, now)
            return
        except SasTokenError as error:
            first = first or error
    raise Refusal(str(first) if first else "no key to check the token against", device=device)


def _token_text(password: bytes | None, device: str) -> str:
    try:
        return (password or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal("password is not UTF-8 text", REFUSED_BAD_USERNAME_PASSWORD, device) from None


def _group_keys(group: dict, registration_id: str) -> list[str]:
    return [
        derive_device_key(key, registration_id)
        for key in (group["primary_key"], group["secondary_key"])
        if key
    ]


def _own_keys(row: dict) -> list[str]:
    return [key for key in (row["primary_key"], row["secondary_key"]) if key]


def _policy_of(token: str) -> str | None:
    try:
        return parse_token(token).policy
    except SasTokenError:
        return None


# ---------------------------------------------------------------- X.509


def _check_leaf(peer: PeerCertificate, registration_id: str, now: float) -> None:
    cn = pki.common_name(peer.leaf)
    if cn.lower() != registration_id.lower():
        raise Refusal("certificate subject CN does not match the registration ID", device=registration_id)
    problem = certs.validity_problem(peer.leaf, now)
    if problem:
        raise Refusal(problem, device=registration_id)


@functools.lru_cache(maxsize=256)
def _group_ca(pem: str) -> x509.Certificate:
    """A group's CA certificate, parsed once rather than at every X.509 CONNECT."""
    return pki.load_certificate(pem.encode())


def _x509_group_for(store: Store, peer: PeerCertificate) -> dict | None:
    """The X.509 group whose CA issued the leaf, nearest first along the chain Python verified."""
    anchors = {pki.thumbprint_sha256(c): i for i, c in enumerate(peer.chain[1:], start=1)}
    best: tuple[int, dict] | None = None
    for group in store.groups("x509"):
        ca = _group_ca(group["ca_pem"])
        if pki.issued_by(peer.leaf, ca):
            distance = 1
        elif group["ca_thumbprint"] in anchors:
            distance = anchors[group["ca_thumbprint"]]
        else:
            continue
        if best is None or distance < best[0]:
            best = (distance, group)
    return best[1] if best else None


def _x509_enrollment(store: Store, peer: PeerCertificate, registration_id: str) -> Enrollment:
    individual = store.individual(registration_id)
    if individual is not None:
        if individual["attestation"] != "x509":
            raise Refusal(
                "the individual enrollment uses a symmetric key, not a certificate", device=registration_id
            )
        if pki.thumbprint_sha256(peer.leaf) != individual["thumbprint"]:
            raise Refusal(
                "certificate thumbprint does not match the individual enrollment", device=registration_id
            )
        return Enrollment("individual", individual["device_id"], "x509", bool(individual["enabled"]))
    group = _x509_group_for(store, peer)
    if group is None:
        raise Refusal("certificate does not chain to the CA of any enrollment group", device=registration_id)
    if not group["verified"]:
        raise Refusal(
            f"enrollment group '{group['name']}' has an unverified CA certificate "
            "(proof of possession not done)",
            device=registration_id,
        )
    return Enrollment("group", group["name"], "x509", bool(group["enabled"]))


# ---------------------------------------------------------------- DPS


def authenticate_dps(
    store: Store,
    client_id: str,
    username: str | None,
    password: bytes | None,
    peer: PeerCertificate | None,
    now: float,
) -> DpsIdentity:
    scope, registration_id, _params = parse_dps_username(username)
    if scope != store.id_scope():
        raise Refusal("ID scope in the user name is not this DPS's", device=registration_id)
    if client_id.lower() != registration_id.lower():
        raise Refusal(
            "client ID differs from the registration ID in the user name",
            REFUSED_BAD_USERNAME_PASSWORD,
            registration_id,
        )
    try:
        validate_registration_id(registration_id)
    except InputError:
        raise Refusal(
            "registration ID has characters DPS does not allow", REFUSED_BAD_USERNAME_PASSWORD
        ) from None
    if password:
        token = _token_text(password, registration_id)
        policy = _policy_of(token)
        if policy is not None and policy != DPS_POLICY:
            raise Refusal(f"token policy '{policy}' is not '{DPS_POLICY}'", device=registration_id)
        return DpsIdentity(registration_id, _sas_enrollment(store, token, scope, registration_id, now))
    if peer is None:
        raise Refusal("neither a SAS token nor a client certificate", device=registration_id)
    _check_leaf(peer, registration_id, now)
    return DpsIdentity(registration_id, _x509_enrollment(store, peer, registration_id))


def _sas_enrollment(store: Store, token: str, scope: str, registration_id: str, now: float) -> Enrollment:
    resource = dps_resource(scope, registration_id)
    individual = store.individual(registration_id)
    if individual is not None:  # individual enrollments take precedence over groups
        if individual["attestation"] != "sas":
            raise Refusal(
                "the individual enrollment uses a certificate, not a symmetric key", device=registration_id
            )
        _check_sas(token, _own_keys(individual), resource, now, registration_id)
        return Enrollment("individual", individual["device_id"], "sas", bool(individual["enabled"]))
    groups = store.groups("sas")
    if not groups:
        raise Refusal("no enrollment for this registration ID", device=registration_id)
    first: Refusal | None = None
    for group in groups:
        try:
            _check_sas(token, _group_keys(group, registration_id), resource, now, registration_id)
        except Refusal as refusal:
            first = first or refusal
            continue
        return Enrollment("group", group["name"], "sas", bool(group["enabled"]))
    assert first is not None
    raise first


# ---------------------------------------------------------------- hub


def device_keys(store: Store, device: dict) -> list[str]:
    """The symmetric keys a device may sign hub tokens with, from its enrollment."""
    if device["enrollment_kind"] == "individual":
        row = store.individual(device["enrollment_name"])
        return _own_keys(row) if row else []
    group = store.group(device["enrollment_name"])
    return _group_keys(group, device["device_id"]) if group else []


def authenticate_hub(
    store: Store,
    hub_name: str,
    client_id: str,
    username: str | None,
    password: bytes | None,
    peer: PeerCertificate | None,
    now: float,
) -> HubIdentity:
    hub, device_id, params = parse_hub_username(username)
    if hub.lower() != hub_name.lower():
        raise Refusal("host name in the user name is not this hub", device=device_id)
    if client_id != device_id:
        raise Refusal(
            "client ID differs from the device ID in the user name", REFUSED_BAD_USERNAME_PASSWORD, device_id
        )
    device = store.device(device_id)
    if (
        device is None
        or device["status"] != "assigned"
        or (device["assigned_hub"] or "").lower() != hub.lower()
    ):
        raise Refusal("device is not registered with this hub (provision it through DPS)", device=device_id)
    listed = store.app_device(device_id)
    if listed is not None and not listed["enabled"]:
        raise Refusal("device is blocked in the IoT Central application", device=device_id)
    model_id = params.get("model-id") or None
    if password:
        if device["attestation"] != "sas":
            raise Refusal("device authenticates with a certificate, not a SAS token", device=device_id)
        token = _token_text(password, device_id)
        if _policy_of(token) is not None:
            raise Refusal("a device token must not name a policy (skn)", device=device_id)
        _check_sas(token, device_keys(store, device), hub_resource(hub, device_id), now, device_id)
        return HubIdentity(device["device_id"], model_id, float(parse_token(token).expiry))
    if peer is None:
        raise Refusal("neither a SAS token nor a client certificate", device=device_id)
    if device["attestation"] != "x509":
        raise Refusal("device authenticates with a SAS token, not a certificate", device=device_id)
    _check_leaf(peer, device_id, now)
    enrollment = _x509_enrollment(store, peer, device_id)
    if (enrollment.kind, enrollment.name.lower()) != (
        device["enrollment_kind"],
        device["enrollment_name"].lower(),
    ):
        raise Refusal("certificate belongs to another enrollment than the device's", device=device_id)
    return HubIdentity(device["device_id"], model_id, None)
