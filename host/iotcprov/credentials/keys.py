"""Key services behind `iotcprov keys`: derive device keys, generate keys, issue SAS tokens.

Inputs are validated here (InputError naming the field), so these work the same from Python and
from the CLI. The crypto itself is in sas.py.
"""

import base64
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from iotcprov.credentials import sas
from iotcprov.errors import InputError
from iotcprov.validation import (
    validate_device_id,
    validate_expiry,
    validate_hub_host,
    validate_id_scope,
    validate_key,
    validate_key_bytes,
    validate_ttl,
)

DEFAULT_TTL = 3600  # the SDKs' token lifetime: one hour
DEFAULT_KEY_BYTES = 64  # what IoT Central generates


@dataclass(frozen=True)
class DeviceKey:
    device_id: str
    device_key: str = field(repr=False)  # printed only when asked for


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    resource: str
    expiry: int


def derive_device_keys(
    group_key: str,
    device_ids: Iterable[str],
    group_key_field: str = "--group-key",
    device_id_field: str = "--device-id",
) -> list[DeviceKey]:
    """Each device's key in the enrollment group; every ID is checked before any key is made."""
    validate_key(group_key, field=group_key_field)
    ids = [validate_device_id(device_id, field=device_id_field) for device_id in device_ids]
    group_key = group_key.strip()
    return [DeviceKey(device_id, sas.derive_device_key(group_key, device_id)) for device_id in ids]


def derive_device_key(group_key: str, device_id: str) -> str:
    """One device's key, with the inputs validated (sas.derive_device_key does no checking)."""
    return derive_device_keys(group_key, [device_id])[0].device_key


def generate_key(num_bytes: int = DEFAULT_KEY_BYTES) -> str:
    """A fresh random key from the OS CSPRNG, as base64 text."""
    validate_key_bytes(num_bytes)
    return base64.b64encode(secrets.token_bytes(num_bytes)).decode("ascii")


def issue_token(
    key: str,
    device_id: str,
    *,
    id_scope: str | None = None,
    hub_host: str | None = None,
    ttl: int | None = None,
    expiry: int | None = None,
    now: float | None = None,
    key_field: str = "--key",
) -> IssuedToken:
    """A DPS token (give `id_scope`) or a hub token (give `hub_host`) for `device_id`.

    The expiry is `expiry` if given, else `now` + `ttl` (default one hour from the current time).
    """
    validate_key(key, field=key_field)
    validate_device_id(device_id)
    if (id_scope is None) == (hub_host is None):
        raise InputError("--id-scope: give --id-scope for a DPS token or --hub for a hub token (one of them)")
    if ttl is not None and expiry is not None:
        raise InputError("--ttl: give --ttl or --expiry, not both")
    now = time.time() if now is None else now
    if expiry is None:
        expiry = int(now) + validate_ttl(DEFAULT_TTL if ttl is None else ttl)
    validate_expiry(expiry, now)
    key = key.strip()
    if id_scope is not None:
        validate_id_scope(id_scope)
        return IssuedToken(
            sas.dps_token(key, id_scope, device_id, expiry), sas.dps_resource(id_scope, device_id), expiry
        )
    validate_hub_host(hub_host or "")
    return IssuedToken(
        sas.hub_token(key, hub_host, device_id, expiry), sas.hub_resource(hub_host, device_id), expiry
    )
