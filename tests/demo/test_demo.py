"""`iotcprov demo` as `make demo` runs it: a separate process. What it showed is checked in the
emulator's records (its kept data folder, served again by a fresh emulator), not in its text."""

import base64
import contextlib
import json
import os
import re
import select
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from iotcprov import resources
from iotcprov.credentials.sas import derive_device_key
from iotcprov.demo import steps

from tests.virtual_board.processes import children_of

IOTCPROV = [sys.executable, "-m", "iotcprov"]
DEMO_TIMEOUT = 90  # the demo itself promises under a minute
MODEL = resources.firmware_dir() / "models" / "thermostat.json"  # what the example main.py announces


@pytest.fixture(autouse=True)
def _needs_virtual_board():
    pytest.importorskip("iotcprov.virtual_board")
    from iotcprov.virtual_board import MicroPythonMissing, find_micropython

    try:
        find_micropython()
    except MicroPythonMissing as missing:
        pytest.skip(str(missing))


def _environment(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTCPROV_")}
    return {**env, **extra}


def _sigint_as_at_a_terminal() -> None:
    # A test run started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler; a user's terminal delivers Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_demo(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*IOTCPROV, "demo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, env=_environment(**env), preexec_fn=_sigint_as_at_a_terminal,
    )  # fmt: skip


def descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        for child in children_of(pending.pop()):
            found.append(child)
            pending.append(child)
    return found


def watch(pids: list[int]) -> list[int]:
    """pidfds of the processes still alive (an exited one cannot be opened)."""
    handles = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            handles.append(os.pidfd_open(pid))
    return handles


def assert_all_exit(pidfds: list[int], timeout: float = 10) -> None:
    for pidfd in pidfds:
        assert select.select([pidfd], [], [], timeout)[0] == [pidfd], "a process the demo started outlived it"
        os.close(pidfd)


def read_events_until(demo: subprocess.Popen, step: str, milestone: bool = True) -> list[dict]:
    """JSON lines from the demo up to the first event of `step` (a milestone unless told)."""
    seen = []
    for line in demo.stdout:
        record = json.loads(line)
        seen.append(record)
        if record.get("step") == step and record.get("milestone", False) == milestone:
            return seen
    raise AssertionError(f"the demo ended before {step!r}: {demo.wait(30)} {demo.stderr.read()}")


def records(emulator_data: Path, device_id: str) -> dict:
    """The emulator's records of the demo, read through a fresh emulator on the kept data."""
    from iotcprov.emulator import Emulator

    with Emulator.running(emulator_data) as emu:
        return {
            "device": emu.admin.device(device_id),
            "telemetry": emu.admin.telemetry(device_id),
            "events": emu.admin.events(device=device_id),
            "groups": emu.admin.groups(),
        }


def assert_demo_happened(seen: dict, attestation: str, group: str) -> None:
    device = seen["device"]
    assert device["registrations"] >= 1 and device["status"] == "assigned"
    assert device["enrollment"] == {"kind": "group", "name": group, "attestation": attestation}
    assert device["hub_connections"] >= 1 and device["last_connected"]
    assert device["model_id"] == json.loads(MODEL.read_text())["@id"]
    assert seen["telemetry"], "no telemetry stored"
    assert isinstance(json.loads(seen["telemetry"][0]["body"]), dict)
    assert seen["telemetry"][0]["properties"]["$.ct"] == "application/json"
    desired, reported = device["twin"]["desired"], device["twin"]["reported"]
    assert desired[steps.PROPERTY_NAME] == steps.PROPERTY_VALUE
    ack = reported[steps.PROPERTY_NAME]
    assert ack["value"] == steps.PROPERTY_VALUE and ack["ac"] == 200 and ack["av"] == desired["$version"]
    kinds = [event["kind"] for event in seen["events"]]
    assert "registered" in kinds and "connected" in kinds and "desired patch" in kinds
    answered = [e["reason"] for e in seen["events"] if e["kind"] == "method answered"]
    assert answered == [f"{steps.COMMAND_NAME} -> 200"]


def test_sas_demo_shows_the_whole_flow_and_leaves_nothing_running(tmp_path):
    keep = tmp_path / "kept"
    demo = start_demo("--keep", str(keep), "--json")
    try:
        read_events_until(demo, "hub")  # the board is online: emulator and MicroPython both run now
        started = descendants(demo.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in started]
        assert any(b"emulator" in argv and b"start" in argv for argv in commands)
        assert any(b"micropython" in word for argv in commands for word in argv)  # the unix port
        alive = watch(started)
        out, err = demo.communicate(timeout=DEMO_TIMEOUT)
    finally:
        demo.kill()
    assert demo.returncode == 0, err
    assert_all_exit(alive)
    lines = [json.loads(line) for line in out.splitlines()]
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["emulator_data"] == str(keep.resolve() / "emulator")
    assert summary["telemetry_messages"] >= 1 and summary["total_seconds"] < 60
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/dashboard/", summary["dashboard_url"])

    seen = records(Path(summary["emulator_data"]), summary["device_id"])
    assert_demo_happened(seen, "sas", "demo-sas-devices")
    assert summary["telemetry_messages"] == len(seen["telemetry"])

    # No secret in anything it printed: not the group key, not the device key, not the Wi-Fi password.
    database = sqlite3.connect(keep / "emulator" / "emulator.sqlite3")
    group_key = database.execute("SELECT primary_key FROM groups").fetchone()[0]
    database.close()
    device_key = derive_device_key(group_key, summary["device_id"])
    data = keep / "board" / "iotc-data"
    wifi = json.loads((data / (data / "active").read_text().strip() / "wifi.json").read_text())
    for secret in (group_key, device_key, base64.b64decode(group_key).hex(), wifi["password"]):
        assert secret not in out and secret not in err
    # The board holds only its derived key, never the group key.
    board_bytes = b"".join(p.read_bytes() for p in (keep / "board").rglob("*") if p.is_file())
    assert group_key.encode() not in board_bytes and device_key.encode() in board_bytes
    # --keep leaves the board's secrets readable by this user only
    folder = data / (data / "active").read_text().strip()
    for secret_file in (folder / "device.key", folder / "wifi.json"):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file


def test_x509_demo_uses_a_verified_ca_group(tmp_path):
    keep = tmp_path / "kept"
    result = subprocess.run(
        [*IOTCPROV, "demo", "--x509", "--keep", str(keep)], capture_output=True, text=True,
        timeout=DEMO_TIMEOUT, env=_environment(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    device_id = next((keep / "credentials").glob("demo-*.key.pem")).name.removesuffix(".key.pem")
    seen = records(keep / "emulator", device_id)
    assert_demo_happened(seen, "x509", "demo-x509-devices")
    assert [g["verified"] for g in seen["groups"] if g["name"] == "demo-x509-devices"] == [True]
    assert stat.S_IMODE((keep / "credentials" / f"{device_id}.key.pem").stat().st_mode) == 0o600
    assert not list((keep / "credentials").glob("ca.key*")), "the CA key must stay in memory"
    assert "demo completed" in result.stdout  # plain lines when stdout is not a terminal
    assert "\x1b[" not in result.stdout


@pytest.mark.parametrize("attestation", ["sas", "x509"])
def test_central_demo_enrolls_through_the_rest_api(tmp_path, attestation):
    keep = tmp_path / "kept"
    result = subprocess.run(
        [*IOTCPROV, "demo", "--central", *(["--x509"] if attestation == "x509" else []), "--keep", str(keep),
         "--json"], capture_output=True, text=True, timeout=DEMO_TIMEOUT, env=_environment(),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    group = "SAS-IoT-Devices" if attestation == "sas" else "demo-x509-devices"
    seen = records(keep / "emulator", lines[-1]["device_id"])
    assert_demo_happened(seen, attestation, group)
    texts = " ".join(line.get("text", "") for line in lines)
    assert "API token issued" in texts and f"PUT /api/devices/{lines[-1]['device_id']}" in texts
    kinds = [event["kind"] for event in seen["events"]]
    assert "device created" in kinds  # through the API, before the board registered
    if attestation == "sas":  # no group key reached the host's output; the device's own key did not either
        assert "primaryKey" not in result.stdout and "SharedAccessSignature" not in result.stdout


@pytest.mark.parametrize(("stop_signal", "after_step"), [(signal.SIGINT, "boot"), (signal.SIGTERM, "board")])
def test_an_interrupted_demo_stops_everything_it_started(tmp_path, stop_signal, after_step):
    demo = start_demo("--keep", str(tmp_path / "kept"), "--json")
    try:
        read_events_until(demo, after_step, milestone=after_step != "boot")
        alive = watch(descendants(demo.pid))
        assert alive, "the emulator and the board should be running"
        demo.send_signal(stop_signal)
        _out, err = demo.communicate(timeout=30)
    finally:
        demo.kill()
    assert demo.returncode == 130
    assert err.strip().endswith("iotcprov: interrupted")
    assert_all_exit(alive)
    assert not (tmp_path / "kept" / "emulator" / "emulator.json").exists()  # the emulator shut down


def test_without_the_unix_port_it_says_so_and_starts_nothing(tmp_path):
    result = subprocess.run(
        [*IOTCPROV, "demo", "--keep", str(tmp_path / "kept")], capture_output=True, text=True, timeout=60,
        env=_environment(IOTCPROV_MICROPYTHON="/nonexistent/micropython"), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1
    expected = "iotcprov: error: demo: the virtual board cannot run: IOTCPROV_MICROPYTHON: "
    assert result.stderr.startswith(expected)
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "kept").exists()


def test_keep_must_be_a_new_or_empty_folder(tmp_path):
    (tmp_path / "something").write_text("mine")
    result = subprocess.run(
        [*IOTCPROV, "demo", "--keep", str(tmp_path)], capture_output=True, text=True, timeout=60,
        env=_environment(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("iotcprov: error: --keep: ") and "not an empty folder" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["something"]
