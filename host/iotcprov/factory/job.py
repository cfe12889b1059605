"""What a factory run does to every board: one immutable description, checked before any board."""

import base64
from dataclasses import dataclass, field
from pathlib import Path

from iotcprov.board.deploy import check_firmware_folder
from iotcprov.board.identity import (
    GLOBAL_DPS_HOST,
    MQTT_TLS_PORT,
    IdentityRequest,
    SasCredential,
    build_identity,
)
from iotcprov.board.provision import WifiSettings
from iotcprov.errors import InputError
from iotcprov.factory.central import CentralLink
from iotcprov.factory.credentials import CaSource, CredentialSource
from iotcprov.factory.devices import check_model_id
from iotcprov.validation import validate_id_scope

DEFAULT_ONLINE_TIMEOUT = 90.0
DEFAULT_BOOT_TIMEOUT = 20.0


@dataclass(frozen=True)
class FlashStep:
    image: bytes  # a MicroPython .bin, checked by iotcprov.board.flash before the first write
    board: str = "esp32"
    erase: bool = False
    baud: int | None = None  # None: the board profile's fastest rate (iotcprov.board.flash_baud)

    def __repr__(self) -> str:
        return (
            f"FlashStep({len(self.image)} bytes, board={self.board!r}, erase={self.erase}, baud={self.baud})"
        )


@dataclass(frozen=True)
class FactoryJob:
    id_scope: str
    credentials: CredentialSource
    trust: tuple[bytes, ...]  # DER roots for the boards
    dps_host: str = GLOBAL_DPS_HOST
    dps_port: int = MQTT_TLS_PORT
    hub_port: int = MQTT_TLS_PORT
    model_id: str | None = None  # for IDs whose row names none
    options: dict = field(default_factory=dict)
    wifi: WifiSettings | None = None
    flash: FlashStep | None = None
    deploy: bool = True
    firmware_dir: Path | None = None  # None: the packaged firmware
    main: bool = False  # also install the example main.py
    compile: bool = True  # .mpy when mpy-cross can emit the board's bytecode
    # Boards leaving the line report faults as status lines, which carry no line numbers: bytecode
    # without them is about 2 KB less to send per board (mpy-cross -O3).
    line_numbers: bool = False
    online_check: bool = False
    online_timeout: float = DEFAULT_ONLINE_TIMEOUT
    reprovision: bool = False  # boards already done get their own ID written again
    replace: bool = False  # overwrite boards holding an identity this manifest did not give them
    labels: Path | None = None
    label_include_key: bool = False
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT  # how long a just-plugged or just-flashed board may take
    central: CentralLink | None = None  # the IoT Central application: creates devices, checks online

    @property
    def auth(self) -> str:
        return self.credentials.auth

    def identity_request(self, device_id: str, credential, model_id: str | None) -> IdentityRequest:
        return IdentityRequest(
            id_scope=self.id_scope,
            device_id=device_id,
            credential=credential,
            trust=self.trust,
            dps_host=self.dps_host,
            dps_port=self.dps_port,
            hub_port=self.hub_port,
            model_id=model_id or self.model_id,
            options=dict(self.options),
        )

    def check(self) -> None:
        """Every setting a board would need, checked now: InputError before any board is touched."""
        validate_id_scope(self.id_scope)
        if self.model_id is not None:
            check_model_id(self.model_id)
        if self.online_timeout <= 0:
            raise InputError(f"--online-timeout: {self.online_timeout} is not a positive number of seconds")
        if self.boot_timeout <= 0:
            raise InputError(f"--boot-timeout: {self.boot_timeout} is not a positive number of seconds")
        if self.label_include_key and isinstance(self.credentials, CaSource):
            raise InputError(
                "--label-include-key: X.509 devices have no key to print (the private key stays on the board)"
            )
        if self.label_include_key and self.labels is None:
            raise InputError("--label-include-key: give --labels DIR too")
        if self.labels is not None and self.labels.exists() and not self.labels.is_dir():
            raise InputError(f"--labels: {self.labels} is a file; give a folder for the label PNGs")
        if self.deploy:
            check_firmware_folder(self.firmware_dir)
        # The endpoint, trust and options exactly as build_identity will see them (a placeholder key).
        placeholder = SasCredential(base64.b64encode(bytes(32)).decode())
        build_identity(self.identity_request("factory-check", placeholder, None))
