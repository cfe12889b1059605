"""`provision` + `deploy` onto a virtual board, reset, and the firmware reaches the local emulator:
SAS from an enrollment group key (derived on the host) and X.509 (DER leaf on the board)."""

import base64
import json
import os
from pathlib import Path

import pytest
from iotcprov import resources
from iotcprov.credentials import pki

from tests.board.conftest import board_files, run_cli

# IOTCPROV_TEST_FIRMWARE: try another firmware folder (iotc/ + main.py) with these tests.
FIRMWARE = Path(os.environ.get("IOTCPROV_TEST_FIRMWARE") or resources.firmware_dir())
CONNECTED = r"iotc: hub connected"


@pytest.fixture
def emulator(tmp_path):
    assert (FIRMWARE / "main.py").is_file(), f"no firmware application in {FIRMWARE} (firmware/main.py)"
    from iotcprov.emulator import Emulator

    with Emulator.running(tmp_path / "emulator") as emu:
        yield emu


def endpoint_args(emu) -> list[str]:
    return [
        "--id-scope", emu.info["id_scope"], "--trust", emu.info["ca_cert"],
        "--dps-host", f"{emu.info['dps']['host']}:{emu.info['dps']['port']}",
        "--hub-port", str(emu.info["hub"]["port"]), "--wifi-ssid", "lab", "--wifi-password", "lab-pass",
        "--option", "telemetry_interval=2",
    ]  # fmt: skip


def deploy_and_boot(board) -> None:
    out = run_cli("deploy", "--port", board.port, "--main", "--source", str(FIRMWARE))
    assert out.returncode == 0, out.stderr
    mark = board.output_mark()
    board.reset()
    board.wait_for_output(CONNECTED, timeout=90, since=mark)


@pytest.mark.smoke
def test_sas_group_key_device_reaches_the_hub(emulator, board):
    group_key = emulator.admin.create_sas_group("boards")["primary_key"]
    out = run_cli(
        "provision", "--port", board.port, "--device-id", "sas-board-1", *endpoint_args(emulator),
        env={"IOTCPROV_GROUP_KEY": group_key},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    deploy_and_boot(board)
    assert emulator.admin.device("sas-board-1")["device_id"] == "sas-board-1"

    everything = b"".join(board_files(board.directory).values())
    assert group_key.encode() not in everything and base64.b64decode(group_key) not in everything
    info = run_cli("info", "--port", board.port, "--json")
    assert info.returncode == 0, info.stderr
    details = json.loads(info.stdout)
    assert details["identity"]["device_id"] == "sas-board-1" and details["firmware"]["version"]
    from iotcprov.credentials.sas import derive_device_key

    for secret in (group_key, derive_device_key(group_key, "sas-board-1"), "lab-pass"):
        assert secret not in info.stdout


def test_x509_device_reaches_the_hub(emulator, board, tmp_path):
    ca_key = pki.generate_key("ec")
    ca = pki.make_root_ca("boards CA", ca_key)
    created = emulator.admin.create_x509_group("x509-boards", pki.cert_to_pem(ca).decode())
    proof = pki.make_verification_cert(created["verification_code"], ca, ca_key)
    emulator.admin.verify_group("x509-boards", pki.cert_to_pem(proof).decode())
    leaf_key = pki.generate_key("ec")
    leaf = pki.make_device_cert("x509-board-1", leaf_key, ca, ca_key)
    cert, key = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert.write_bytes(pki.cert_to_pem(leaf))
    key.write_bytes(pki.key_to_pem(leaf_key))

    out = run_cli(
        "provision", "--port", board.port, "--device-id", "x509-board-1",
        "--cert", str(cert), "--key", str(key),
        *endpoint_args(emulator),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    files = board_files(board.directory)
    folder = files["/iotc-data/active"].decode().strip()
    assert files[f"/iotc-data/{folder}/cert.der"] == pki.cert_to_der(leaf)
    assert files[f"/iotc-data/{folder}/key.der"] == pki.key_to_traditional_der(leaf_key)
    deploy_and_boot(board)
    assert emulator.admin.device("x509-board-1")["device_id"] == "x509-board-1"
