"""Issue #16's first acceptance test, from the command line only, with nothing but an API token:
create an X.509 group, verify its CA, provision a virtual board with `--central`, and see
`central status` report it provisioned with its last telemetry."""

from __future__ import annotations

import json
import time

from tests.board.conftest import run_cli
from tests.board.test_reaches_emulator import FIRMWARE, deploy_and_boot
from tests.central.conftest import central_cli


def _status(central, device_id: str) -> dict:
    out = central_cli(central, "status", "--device-id", device_id, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_x509_group_to_a_provisioned_board_with_telemetry(central, board, tmp_path):
    pki = tmp_path / "pki"
    assert run_cli("certs", "root", "--out", str(pki), "--no-encrypt").returncode == 0
    root, root_key = str(pki / "root.pem"), str(pki / "root.key.pem")

    out = central_cli(central, "groups", "create", "--group", "boards", "--x509", "--ca-cert", root, "--json")
    assert out.returncode == 0, out.stderr
    primary = json.loads(out.stdout)["attestation"]["x509"]["signingCertificates"]["primary"]
    assert primary["verified"] is False

    out = central_cli(
        central, "groups", "verify", "--group", "boards", "--ca-cert", root, "--ca-key", root_key
    )
    assert out.returncode == 0, out.stderr
    assert "verified" in out.stdout and "NOT" not in out.stdout

    device_id = "x509-central-1"
    out = run_cli("certs", "device", "--ca-cert", root, "--ca-key", root_key, "--device-id", device_id,
                  "--out", str(pki / "devices"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    info = central.info
    out = run_cli(
        "provision", "--port", board.port, "--device-id", device_id,
        "--cert", str(pki / "devices" / f"{device_id}.pem"),
        "--key", str(pki / "devices" / f"{device_id}.key.pem"),
        "--central", info["central_url"], "--central-token-file", str(central.token_file),
        "--trust", info["ca_cert"], "--dps-host", f"{info['dps']['host']}:{info['dps']['port']}",
        "--hub-port", str(info["hub"]["port"]), "--wifi-ssid", "lab", "--wifi-password", "lab-pass",
        "--option", "telemetry_interval=2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"created device {device_id}" in out.stderr
    assert _status(central, device_id)["status"] == "registered (not provisioned yet)"

    assert (FIRMWARE / "main.py").is_file()
    deploy_and_boot(board)
    deadline = time.monotonic() + 60
    while True:
        report = _status(central, device_id)
        if report["telemetry"].get("temperature") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert report["status"] == "provisioned" and report["provisioned"] and report["enabled"]
    assert report["template"] == "dtmi:iotcprov:Thermostat;1"
    assert isinstance(report["telemetry"]["temperature"]["value"], int | float)

    out = central_cli(central, "status", "--device-id", device_id)  # the text form
    assert out.returncode == 0 and "status: provisioned" in out.stdout and "temperature: " in out.stdout
