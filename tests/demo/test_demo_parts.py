"""The demo's parts: status-line parsing, the console follower on a real virtual board, the
platform check, and a failing step that stops everything (in this process, through the API)."""

import os
import platform
import select

import pytest
from iotcprov.board.monitor import parse_status
from iotcprov.demo import DemoFailed, DemoOptions, DemoUnavailable, check_platform, run_demo, steps
from iotcprov.demo.console import ConsoleFollower
from iotcprov.demo.timeline import Timeline
from iotcprov.errors import OperationError

from tests.virtual_board.processes import children_of


def test_status_lines_parse_into_event_and_fields():
    status = parse_status("iotc: dps failed status=401 result=error code=401002 reason=bad key for dev-1")
    assert status.event == "dps failed"
    assert status.fields == {
        "status": "401", "result": "error", "code": "401002", "reason": "bad key for dev-1"
    }  # fmt: skip
    assert parse_status("iotc: wifi connected ip=127.0.0.1").fields == {"ip": "127.0.0.1"}
    assert parse_status("Traceback (most recent call last):") is None


def test_check_platform_names_linux_x86_64_elsewhere(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    with pytest.raises(DemoUnavailable, match=r"needs Linux x86_64.*this machine is Darwin arm64"):
        check_platform()


@pytest.fixture
def board(tmp_path):
    virtual_board = pytest.importorskip("iotcprov.virtual_board")
    (tmp_path / "board").mkdir()
    try:
        board = virtual_board.VirtualBoard(tmp_path / "board", state_directory=tmp_path / "state")
    except virtual_board.MicroPythonMissing as missing:
        pytest.skip(str(missing))
    (tmp_path / "board" / "main.py").write_text(
        "print('iotc: boot version=t device=d')\n"
        "print('iotc: config error file=/iotc-data/active reason=missing: provision the board')\n"
    )
    with board:
        yield board


def test_the_follower_puts_lines_on_the_timeline_and_stops_at_a_failure(board):
    # Follow from the end of the power-on boot's output: a mark taken while main.py still prints
    # would start between its two lines, and the follower would see the failure without the boot.
    powered_on = board.wait_for_output(r"iotc: config error[^\n]*\n", timeout=30)
    timeline = Timeline()
    follower = ConsoleFollower(board, timeline, "boot", since=powered_on.end()).start()
    try:
        board.reset()
        assert follower.wait_for("boot", timeout=30).fields["version"] == "t"
        with pytest.raises(OperationError, match="board reported: iotc: config error file=/iotc-data/active"):
            follower.wait_for("dps assigned", timeout=30)
    finally:
        follower.stop()
    shown = [event.text for event in timeline.events]
    assert "iotc: boot version=t device=d" in shown
    assert all(event.step == "boot" and event.source == "board" for event in timeline.events)


def test_a_failing_step_names_itself_and_stops_everything(tmp_path, monkeypatch):
    pytest.importorskip("iotcprov.virtual_board")
    try:
        check_platform()
    except DemoUnavailable as missing:
        pytest.skip(str(missing))
    monkeypatch.setattr(steps, "PROPERTY_VALUE", 99)  # the thermostat refuses targets outside 5-35
    before = set(children_of(os.getpid()))
    watched = []

    def on_event(event):
        if event.step == "telemetry" and event.milestone:
            watched.extend(os.pidfd_open(pid) for pid in set(children_of(os.getpid())) - before)

    refused = r'^demo: property: the device refused targetTemperature: .*"ac": 400'
    with pytest.raises(DemoFailed, match=refused):
        run_demo(DemoOptions(keep=tmp_path / "kept", baud=0), on_event=on_event)
    assert watched, "the emulator process should have been running"
    for pidfd in watched:
        assert select.select([pidfd], [], [], 10)[0] == [pidfd]
        os.close(pidfd)
    assert not (tmp_path / "kept" / "board-state" / "port").exists()
