"""A factory line's IoT Central application (`factory run --central APP`, docs/factory.md).

It can give the run its ID scope, create each device before the board is provisioned (so it
needs no approval when automatic approval is off), hand out each device's own keys (no group key
on the host), and say after the online check whether the application has the device
provisioned, or is holding it back for approval.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from iotcprov.board.identity import SasCredential
from iotcprov.central import service
from iotcprov.central.client import CentralClient
from iotcprov.errors import InputError


@dataclass(frozen=True)
class CentralLink:
    client: CentralClient = field(repr=False)
    create_devices: bool = False

    @property
    def host(self) -> str:
        return self.client.app.host

    def id_scope(self, first_device: str | None) -> str:
        """The application's ID scope, which the API gives with a device's credentials: the first
        device the application lists, else (with create_devices) the run's first device, created."""
        listed = service.list_devices(self.client)
        device_id = listed[0]["id"] if listed else None
        if device_id is None and self.create_devices and first_device is not None:
            service.create_device(self.client, first_device)
            device_id = first_device
        if device_id is None:
            raise InputError(
                f"--id-scope: the application {self.host} lists no device to read its ID scope from; "
                "give --id-scope (the application shows it under Permissions > Device connection groups) "
                "or --create-devices"
            )
        return service.id_scope_in(service.credentials(self.client, device_id), self.client, device_id)

    def before_provision(self, device_id: str) -> bool:
        """Create the device (approved) when asked to and the application does not list it yet;
        True when it was created."""
        if not self.create_devices or service.find_device(self.client, device_id) is not None:
            return False
        service.create_device(self.client, device_id)
        return True

    def held_back(self, device_id: str, device: dict | None = None) -> str | None:
        """Why the application keeps the device from registering (waiting for approval or blocked),
        with the fix; None when it does not."""
        device = device or service.find_device(self.client, device_id)
        if device is None or device.get("enabled"):
            return None
        return (
            f"device {device_id} is {service.state_of(device)} in the application {self.host}: approve "
            f"it with `iotcprov central devices approve --device-id {device_id}`, or run with "
            "--create-devices (created devices need no approval)"
        )

    def online_problem(self, device_id: str) -> str | None:
        """None when the application has the device provisioned, else what is wrong and the fix."""
        device = service.find_device(self.client, device_id)
        if device is None:
            return f"the application {self.host} does not list device {device_id}"
        if not device.get("enabled"):
            return self.held_back(device_id, device)
        if not device.get("provisioned"):
            return f"the application {self.host} does not show device {device_id} provisioned"
        return None


class CentralKeySource:
    """Each device's own keys from the application (its credentials): no group key on the host.
    The devices must exist there: the line creates them first (--create-devices, required)."""

    auth = "sas"

    def __init__(self, link: CentralLink) -> None:
        self._link = link

    def __repr__(self) -> str:
        return f"CentralKeySource({self._link.host})"

    def credential_for(self, device_id: str) -> SasCredential:
        client = self._link.client
        found = service.credentials(client, device_id)
        return SasCredential(service.primary_key_in(found, client, device_id))

    def describe(self) -> dict:
        return {"auth": self.auth, "keys": f"per device, from IoT Central {self._link.host}"}

    def binding(self) -> str:
        """A manifest made with one application's keys stays with that application."""
        return "iot central sha256:" + hashlib.sha256(self._link.host.lower().encode()).hexdigest()

    def check_device_ids(self, device_ids: list[str]) -> None:
        """Any valid device ID: the application makes its keys."""



