"""The `iotcprov emulator` CLI contract against a running emulator process."""

from __future__ import annotations

import base64
import json
import threading

import pytest
from iotcprov.board.identity import sas_fingerprint
from iotcprov.cli import main
from iotcprov.credentials.sas import derive_device_key
from iotcprov.emulator import mqtt_codec as mqtt

from tests.emulator import testpki
from tests.emulator.helpers import connect_hub_sas, provision_sas


@pytest.fixture(scope="module")
def data(emulator):
    return str(emulator.data_dir)


def run(capsys, *argv: str) -> tuple[int, object, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    out = captured.out.strip()
    return code, (json.loads(out) if out else None), captured.err


def test_a_key_given_to_group_create_is_not_printed_back(emulator, data, capsys, tmp_path):
    given = derive_device_key(base64.b64encode(bytes(64)).decode(), "any")  # a well-formed key
    key_file = tmp_path / "primary.key"
    key_file.write_text(given + "\n")
    code, group, err = run(capsys, "emulator", "--data", data, "group", "create", "--name", "cli-given",
                           "--sas", "--primary-key-file", str(key_file))  # fmt: skip
    assert code == 0 and given not in json.dumps(group) + err
    assert group["primary_key_fingerprint"] == sas_fingerprint(given) and "primary_key" not in group
    assert len(base64.b64decode(group["secondary_key"])) >= 32  # generated here: printed once, as before


def test_groups_enrollments_and_devices(emulator, data, capsys, tmp_path):
    code, group, _ = run(capsys, "emulator", "--data", data, "group", "create", "--name", "cli-sas", "--sas")
    assert code == 0 and set(group) == {"name", "attestation", "primary_key", "secondary_key"}

    key = testpki.generate_key()
    root = testpki.make_root_ca("cli root", key)
    (tmp_path / "ca.pem").write_text(testpki.pem(root))
    code, x509_group, _ = run(
        capsys,
        "emulator",
        "--data",
        data,
        "group",
        "create",
        "--name",
        "cli-x509",
        "--x509",
        "--ca-cert",
        str(tmp_path / "ca.pem"),
    )
    assert code == 0 and len(x509_group["verification_code"]) == 48
    proof = testpki.make_verification_cert(x509_group["verification_code"], root, key)
    (tmp_path / "proof.pem").write_text(testpki.pem(proof))
    code, verified, _ = run(
        capsys,
        "emulator",
        "--data",
        data,
        "group",
        "verify",
        "--name",
        "cli-x509",
        "--cert",
        str(tmp_path / "proof.pem"),
    )
    assert verified["verified"] is True
    code, disabled, _ = run(capsys, "emulator", "group", "disable", "--name", "cli-sas", "--data", data)
    assert disabled["enabled"] is False
    run(capsys, "emulator", "--data", data, "group", "enable", "--name", "cli-sas")

    device_key = derive_device_key(group["primary_key"], "cli-dev")
    code, enrolled, _ = run(
        capsys, "emulator", "--data", data, "enroll", "--device-id", "cli-ind", "--sas", "--key", device_key
    )
    assert code == 0 and "primary_key" not in enrolled and device_key not in json.dumps(enrolled)
    assert enrolled["primary_key_fingerprint"] == sas_fingerprint(device_key)
    provision_sas(emulator, "cli-dev", device_key)
    code, devices, _ = run(capsys, "emulator", "--data", data, "devices")
    assert [d["device_id"] for d in devices] == ["cli-dev"]
    code, device, _ = run(capsys, "emulator", "--data", data, "device", "--device-id", "cli-dev")
    assert device["enrollment"]["name"] == "cli-sas" and device["status"] == "assigned"
    assert "primary_key" not in json.dumps(devices)

    code, patched, _ = run(
        capsys, "emulator", "--data", data, "desired", "--device-id", "cli-dev", "--patch", '{"interval": 3}'
    )
    assert patched == {"$version": 2, "delivered": False}
    code, queued, _ = run(
        capsys,
        "emulator",
        "--data",
        data,
        "c2d",
        "--device-id",
        "cli-dev",
        "--body",
        "hi",
        "--property",
        "method-name=ping",
    )
    assert queued["queued"] is True
    code, messages, _ = run(
        capsys, "emulator", "--data", data, "telemetry", "--device-id", "cli-dev", "--wait", "0.2"
    )
    assert code == 0 and messages == []
    code, result, _ = run(
        capsys,
        "emulator",
        "--data",
        data,
        "invoke",
        "--device-id",
        "cli-dev",
        "--command",
        "reboot",
        "--timeout",
        "1",
    )
    assert code == 1 and result["status"] == 404

    code, fault, _ = run(
        capsys,
        "emulator",
        "--data",
        data,
        "fault",
        "dps-status",
        "--status",
        "503",
        "--retry-after",
        "4",
        "--count",
        "2",
    )
    assert fault["params"] == {"status": 503, "retry_after": 4} and fault["remaining"] == 2
    code, faults, _ = run(capsys, "emulator", "--data", data, "fault", "list")
    assert len(faults) == 1
    code, cleared, _ = run(capsys, "emulator", "--data", data, "fault", "clear")
    assert cleared == {"cleared": 1}
    code, stats, _ = run(capsys, "emulator", "--data", data, "stats")
    assert stats["registrations"] >= 1 and stats["tls_handshakes"]["dps"] >= 1
    code, events, _ = run(capsys, "emulator", "--data", data, "events", "--kind", "registered")
    assert events[-1]["device"] == "cli-dev"
    assert group["primary_key"] not in json.dumps(events)


def test_errors_are_one_line_with_exit_codes(data, capsys, tmp_path):
    code, _, err = run(capsys, "emulator", "--data", data, "device", "--device-id", "nobody")
    assert code == 2 and err.count("\n") == 1 and "no device 'nobody'" in err
    code, _, err = run(capsys, "emulator", "--data", data, "desired", "--device-id", "x", "--patch", "{oops")
    assert code == 2 and "--patch" in err
    code, _, err = run(capsys, "emulator", "--data", data, "enroll", "--device-id", "bad id!", "--sas")
    assert code == 2 and "device_id" in err
    code, _, err = run(
        capsys, "emulator", "--data", data, "enroll", "--device-id", "k", "--sas", "--key", "xx"
    )
    assert code == 2 and "base64" in err and "xx" not in err.split(":", 2)[-1]
    code, _, err = run(capsys, "emulator", "--data", str(tmp_path), "devices")
    assert code == 2 and "no emulator is running" in err  # bad input, as every other refusal here


def test_telemetry_wait_waits_for_a_device_that_has_not_registered(emulator, data, capsys):
    enrollment = emulator.admin.enroll_sas("cli-late")
    outcome: dict = {}
    command = threading.Thread(
        target=lambda: outcome.update(
            code=main(["emulator", "--data", data, "telemetry", "--device-id", "cli-late", "--wait", "20"])
        )
    )
    command.start()
    command.join(1.0)
    assert command.is_alive(), "the command did not wait for the device"  # old behaviour: 404 at once
    provision_sas(emulator, "cli-late", enrollment["primary_key"])
    client, connack = connect_hub_sas(emulator, "cli-late", enrollment["primary_key"])
    try:
        assert connack.return_code == 0
        client.publish("devices/cli-late/messages/events/", b'{"late": true}', qos=1)
        assert isinstance(client.receive(), mqtt.Puback)
    finally:
        client.close()
    command.join(20)
    assert not command.is_alive() and outcome["code"] == 0
    messages = json.loads(capsys.readouterr().out)
    assert [m["body"] for m in messages] == ['{"late": true}']
    code, _, err = run(
        capsys, "emulator", "--data", data, "telemetry", "--device-id", "cli-never", "--wait", "0.3"
    )
    assert code == 2 and "no device 'cli-never'" in err  # still 404 once the wait ends
