"""What provisioning takes from an IoT Central application: the ID scope and the device's keys.

With these a board is provisioned with no group key on the host at all. The device is created
first when the application does not list it (approved: created devices need no approval, so this
also works when automatic approval is off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iotcprov.board.identity import SasCredential
from iotcprov.central import service
from iotcprov.central.client import CentralClient
from iotcprov.errors import OperationError


@dataclass(frozen=True)
class DeviceSetup:
    device_id: str
    id_scope: str
    credential: SasCredential | None = field(repr=False)  # None: X.509, the certificate is the caller's
    created: bool  # the application did not list the device; it was created
    status: str  # IoT Central's status of the device before provisioning
    warnings: tuple[str, ...] = ()


def prepare_device(
    client: CentralClient,
    device_id: str,
    *,
    want_keys: bool,
    create: bool = True,
    template: str | None = None,
) -> DeviceSetup:
    """The device's ID scope (and its SAS keys when `want_keys`), creating it when missing and
    `create`. Warns when the application holds it back (waiting for approval, or blocked)."""
    device = service.find_device(client, device_id)
    created = False
    if device is None and create:
        device = service.create_device(client, device_id, template=template)
        created = True
    warnings = []
    state = service.state_of(device) if device else "not in the application"
    if device is not None and not device.get("enabled"):
        warnings.append(
            f"device {device_id} is {state} in the application, so it will not come online; approve it "
            f"with: iotcprov central devices approve --device-id {device_id}"
        )
    if device is None:
        raise OperationError(
            f"IoT Central {client.app.host}: device {device_id} is not in the application, and its ID "
            "scope and keys come with it; let it be created"
        )
    found = service.credentials(client, device_id)
    scope = service.id_scope_in(found, client, device_id)
    credential = None
    if want_keys:
        fix = "; provision it with --cert and --key"
        credential = SasCredential(service.primary_key_in(found, client, device_id, fix))
    return DeviceSetup(device_id, scope, credential, created, state, tuple(warnings))
