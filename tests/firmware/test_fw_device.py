"""End to end: the firmware on a virtual board against the local DPS + IoT Hub emulator, for
each kind of enrollment and through the emulator's fault injection (issue 6, "Must show")."""

import json
import re
import time

import pytest
from fw_board import (
    MODEL_ID,
    install_firmware,
    provisioned_board_dir,
    sas_group_identity,
    sas_individual_identity,
    x509_group_identity,
    x509_individual_identity,
)

pytest.importorskip("iotcprov.virtual_board", reason="needs the virtual board (Linux x86_64)")
from iotcprov.virtual_board import VirtualBoard  # noqa: E402

pytestmark = pytest.mark.usefixtures("release")  # each test on the oldest and newest release

TELEMETRY = r"iotc: telemetry sent n=(\d+)"


def registrations(emu, device_id: str) -> int:
    return emu.admin.device(device_id)["registrations"]


def events(emu, device_id: str, kind: str) -> list[dict]:
    return [e for e in emu.admin.events(device=device_id) if e["kind"] == kind]


def dps_connections(emu, device_id: str) -> int:
    return len([e for e in events(emu, device_id, "connected") if e["endpoint"] == "dps"])


def assert_telemetry_accepted(emu, device_id: str) -> dict:
    """At least one message stored by the hub, JSON with the board readings and IoT Central's
    content markers."""
    messages = emu.admin.telemetry(device_id, wait=20)
    assert messages, "the hub stored no telemetry"
    body = json.loads(messages[-1]["body"])
    assert isinstance(body["uptime"], int) and body["freeHeap"] > 0 and body["rssi"] == -45
    properties = messages[-1]["properties"]
    assert properties["$.ct"] == "application/json" and properties["$.ce"] == "utf-8"
    return body


@pytest.mark.parametrize(
    "enroll",
    [
        pytest.param(lambda emu: sas_group_identity(emu, "sas-group", "sas-group-dev"), id="sas-group"),
        pytest.param(lambda emu: sas_individual_identity(emu, "sas-single-dev"), id="sas-individual"),
        pytest.param(lambda emu: x509_group_identity(emu, "x509-group", "x509-group-dev"), id="x509-group"),
        pytest.param(lambda emu: x509_individual_identity(emu, "x509-single-dev"), id="x509-individual"),
    ],
)
def test_each_enrollment_kind_reaches_accepted_telemetry(tmp_path, emu, enroll):
    identity = enroll(emu)
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity)) as board:
        board.wait_for_output(r"iotc: dps assigned hub=localhost device=" + re.escape(identity.device_id))
        board.wait_for_output(TELEMETRY, timeout=30)
        assert_telemetry_accepted(emu, identity.device_id)
    record = emu.admin.device(identity.device_id)
    assert record["registrations"] == 1
    assert record["dps_model_id"] == MODEL_ID and record["hub_model_id"] == MODEL_ID
    assert record["enrollment"]["attestation"] == ("sas" if identity.key else "x509")
    output = board.output()
    assert identity.key is None or identity.key not in output  # no secret on the console


def test_second_boot_skips_dps_and_needs_one_tls_handshake(tmp_path, emu):
    identity = sas_group_identity(emu, "reboot-group", "reboot-dev")
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity)) as board:
        board.wait_for_output(TELEMETRY, timeout=30)
        cache = json.loads((board.directory / "iotc-data" / "assignment.json").read_text())
        assert (cache["hub"], cache["device_id"]) == ("localhost", "reboot-dev")
        before = emu.admin.stats()["tls_handshakes"]
        mark = board.output_mark()
        board.reset()
        board.wait_for_output(TELEMETRY, timeout=30, since=mark)
        after = emu.admin.stats()["tls_handshakes"]
        second_boot = board.output()[mark:]
    assert "dps registering" not in second_boot and "cache=cached" in second_boot
    assert after["dps"] == before["dps"]
    assert after["hub"] == before["hub"] + 1
    assert registrations(emu, "reboot-dev") == 1


def test_throttled_registration_waits_at_least_retry_after(tmp_path, emu):
    identity = sas_group_identity(emu, "throttle-group", "throttle-dev")
    emu.admin.fault("dps-status", status=429, retry_after=4, count=1, device="throttle-dev")
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity)) as board:
        board.wait_for_output(r"iotc: dps failed status=429 result=error .*retry_after=4")
        backoff = board.wait_for_output(r"iotc: backoff stage=dps delay=([0-9.]+)")
        board.wait_for_output(TELEMETRY, timeout=40)
    assert float(backoff.group(1)) >= 4
    throttled = [e["time"] for e in emu.admin.events(device="throttle-dev") if e["kind"] == "dps answer"]
    connects = [e["time"] for e in events(emu, "throttle-dev", "connected") if e["endpoint"] == "dps"]
    assert len(throttled) == 1 and len(connects) == 2  # one retry, no hot loop
    assert connects[1] - throttled[0] >= 4


def test_503_twice_then_success(tmp_path, emu):
    identity = sas_group_identity(emu, "busy-group", "busy-dev", backoff_min=1)
    emu.admin.fault("dps-status", status=503, retry_after=0, count=2, device="busy-dev")
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity)) as board:
        board.wait_for_output(TELEMETRY, timeout=40)
        output = board.output()
    assert output.count("dps failed status=503") == 2
    delays = [float(d) for d in re.findall(r"backoff stage=dps delay=([0-9.]+)", output)]
    assert len(delays) == 2 and delays[0] >= 1 and delays[1] >= 2  # exponential, never immediate
    assert dps_connections(emu, "busy-dev") == 3  # two refused answers, one success: no extra tries


def test_connection_dropped_during_registration_is_retried(tmp_path, emu):
    identity = sas_group_identity(emu, "drop-group", "drop-dev")
    # CONNECT, SUBSCRIBE, then the register PUBLISH: the link dies before any answer.
    emu.admin.fault("drop", endpoint="dps", after_packets=3, count=1, device="drop-dev")
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity)) as board:
        board.wait_for_output(r"iotc: dps failed reason=")
        board.wait_for_output(r"iotc: backoff stage=dps")
        board.wait_for_output(TELEMETRY, timeout=40)
    assert dps_connections(emu, "drop-dev") == 2  # the dropped one and one retry


def test_hub_refusing_the_credentials_makes_the_device_provision_again(tmp_path, emu):
    identity = sas_group_identity(emu, "refuse-group", "refuse-dev")
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity)) as board:
        board.wait_for_output(TELEMETRY, timeout=30)
        emu.admin.fault("refuse-connect", endpoint="hub", return_code=5, count=1, device="refuse-dev")
        mark = board.output_mark()
        board.reset()  # boots with the cached assignment, which the hub now refuses
        board.wait_for_output(r"iotc: hub failed host=localhost connack=5", since=mark)
        board.wait_for_output(r"iotc: reprovision reason=hub-refused", since=mark)
        board.wait_for_output(r"iotc: dps assigned", since=mark, timeout=30)
        board.wait_for_output(TELEMETRY, since=mark, timeout=30)
    assert registrations(emu, "refuse-dev") == 2


def test_short_tokens_are_renewed_before_expiry_and_telemetry_continues(tmp_path, emu):
    # A 20 s token (the shortest the firmware accepts) is renewed 4 s early; the emulator ends
    # any session whose token expires, so a missed renewal would show as a disconnect.
    identity = sas_group_identity(emu, "token-group", "token-dev", token_ttl=20, telemetry_interval=2)
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity)) as board:
        connected = board.wait_for_output(r"iotc: hub connected .*expires=(\d+)", timeout=30)
        expires = int(connected.group(1))
        renewed = board.wait_for_output(r"iotc: token renewed expires=(\d+)", timeout=30)
        after_renewal = board.output_mark()
        board.wait_for_output(TELEMETRY, since=after_renewal, timeout=10)
        while time.time() < expires + 3:  # past the first token's expiry
            time.sleep(0.5)
        later = board.output_mark()
        board.wait_for_output(TELEMETRY, since=later, timeout=10)
        output = board.output()
    assert int(renewed.group(1)) > expires
    assert "hub disconnected" not in output
    record = emu.admin.device("token-dev")
    assert record["disconnect_reason"] != "token expired" and record["hub_connections"] >= 2


def test_disabled_enrollment_stops_fast_and_says_why(tmp_path, emu):
    identity = sas_individual_identity(emu, "disabled-dev")
    emu.admin.set_enrollment_enabled("disabled-dev", False)
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity)) as board:
        board.wait_for_output(r"iotc: dps failed status=200 result=disabled")
        stopped = board.wait_for_output(r"iotc: stopped retry_in=(\d+) reason=(.*)")
        attempts = len(
            [e for e in emu.admin.events(device="disabled-dev") if e["kind"] == "register disabled"]
        )
        time.sleep(3)  # a hot loop would register again within this time
        again = len([e for e in emu.admin.events(device="disabled-dev") if e["kind"] == "register disabled"])
    assert int(stopped.group(1)) == 3600 and "disabled" in stopped.group(2)
    assert attempts == again == 1


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda data: (data / "active").unlink(), "/iotc-data/active"),
        (lambda data: (data / "id-00000001" / "identity.json").write_text("{not json"), "identity.json"),
        (lambda data: (data / "id-00000001" / "device.key").write_text("short"), "device.key"),
        (lambda data: (data / "id-00000001" / "root-0.der").write_bytes(b"-----BEGIN"), "root-0.der"),
        # there but unreadable (a folder in its place): not the same as "no Wi-Fi settings"
        (lambda data: [(data / "wifi.json").unlink(), (data / "wifi.json").mkdir()], "wifi.json"),
    ],
    ids=["missing-active", "corrupt-identity", "bad-key", "pem-root", "unreadable-wifi"],
)
def test_broken_identity_prints_one_line_and_leaves_the_repl(tmp_path, emu, damage, named):
    identity = sas_group_identity(emu, "broken-" + named.replace("/", "").replace(".", ""), "broken-dev")
    board_dir = provisioned_board_dir(tmp_path, emu, identity)
    damage(board_dir / "iotc-data")
    with VirtualBoard(directory=board_dir) as board:
        line = board.wait_for_output(r"iotc: config error file=(\S+) reason=(.*)")
        result = board.run_mpremote("exec", "print('repl', 6 * 7)")
        output = board.output()
    assert named in line.group(1) and "re-provision" in line.group(2)
    assert "repl 42" in result.stdout
    assert output.count("iotc: config error") == 1 and "Traceback" not in output
    assert "iotc: wifi" not in output


def test_no_identity_at_all_is_a_config_error(tmp_path):
    board_dir = tmp_path / "blank"
    board_dir.mkdir()
    install_firmware(board_dir)
    with VirtualBoard(directory=board_dir) as board:
        board.wait_for_output(r"iotc: config error file=/iotc-data/active reason=missing")
        assert "repl 42" in board.run_mpremote("exec", "print('repl', 6 * 7)").stdout


RESTART = """\
from iotc.app import Device
d = Device(telemetry=False)
print("started", d.start())
p = d.policy
p.attempt, p.hub_failures, p.fresh_assignment = 4, 3, True  # as after failures in a first run
d.stop()
d.step()
print("stepped after stop", d.stage, d.link)
d.start()
print("restarted", d.policy.attempt, d.policy.hub_failures, d.policy.fresh_assignment, d.stage)
d.stop()
"""


def test_a_stopped_device_stays_stopped_and_starts_again_afresh(tmp_path, emu):
    """stop() then step() serves nothing (no reconnection behind the caller's back); start()
    again begins with the policy's counts at zero, as after a reset."""
    identity = sas_group_identity(emu, "restart-group", "restart-dev")
    board_dir = provisioned_board_dir(tmp_path, emu, identity, main="print('no device here')\n")
    with VirtualBoard(directory=board_dir) as board:
        board.wait_for_output(r"no device here")
        result = board.run_mpremote("exec", RESTART)
    assert "started True" in result.stdout, result.stdout + result.stderr
    assert "stepped after stop None None" in result.stdout
    assert "restarted 0 0 False wifi" in result.stdout and "Traceback" not in result.stdout


# The 64 KB: the heap the application gets, as on an ESP32 with network, umqtt.simple,
# ntptime and machine built in (the virtual board holds its own stand-ins outside it; see its
# README, Heap). bench/bench_firmware.py prints the smallest heap that still completes.
LIMITED_HEAP = "64K"


def test_full_flow_in_a_limited_heap(tmp_path, emu):
    identity = sas_group_identity(emu, "heap-group", "heap-dev", telemetry_interval=1)
    board_dir = provisioned_board_dir(tmp_path, emu, identity)
    with VirtualBoard(directory=board_dir, heap=LIMITED_HEAP) as board:
        board.wait_for_output(r"iotc: telemetry sent n=10\b", timeout=60)
        output = board.output()
    assert "MemoryError" not in output and "iotc: error" not in output
    assert "dps assigned" in output
    assert int(re.search(r"iotc: boot .* free=(\d+)", output).group(1)) < 64 * 1024  # the limit held
    assert len(emu.admin.telemetry("heap-dev")) >= 10


USER_MAIN = """\
from iotc.app import Device

calls = []


def readings():
    calls.append(1)
    if len(calls) == 2:
        raise ValueError("sensor not ready")
    return {"temperature": 20 + len(calls)}


Device(telemetry=readings).run()
"""


def test_a_users_main_sends_its_own_telemetry_and_survives_its_errors(tmp_path, emu):
    identity = sas_group_identity(emu, "user-group", "user-dev", telemetry_interval=1)
    board_dir = provisioned_board_dir(tmp_path, emu, identity)
    (board_dir / "main.py").write_text(USER_MAIN)
    with VirtualBoard(directory=board_dir) as board:
        board.wait_for_output(r"iotc: error stage=telemetry reason=ValueError sensor not ready")
        board.wait_for_output(r"iotc: telemetry sent n=3\b", timeout=20)
        output = board.output()
    assert "hub disconnected" not in output
    bodies = [json.loads(m["body"]) for m in emu.admin.telemetry("user-dev")]
    assert [b["temperature"] for b in bodies[:3]] == [21, 23, 24]
