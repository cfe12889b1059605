"""End to end: the firmware's bring-up stages (Wi-Fi join, NTP clock) on a virtual board whose
stand-ins fail as the real ones do (wifi_fail, ntp_fail, clock_unset), against the local
emulator (issue 6: join with backoff, NTP over several servers, no TLS or signing until the clock
is set). Small backoff options keep each test near 10 s."""

import json
import re
import time

import pytest
from fw_board import provisioned_board_dir, sas_group_identity

pytest.importorskip("iotcprov.virtual_board", reason="needs the virtual board (Linux x86_64)")
from iotcprov.virtual_board import VirtualBoard  # noqa: E402

pytestmark = pytest.mark.usefixtures("release")  # each test on the oldest and newest release

TELEMETRY = r"iotc: telemetry sent n=\d+"
# Fast, exactly predictable retries: no jitter, so every delay is the schedule itself.
FAST = {"backoff_min": 1, "backoff_max": 2, "jitter_max": 0, "wifi_timeout": 1}


def nth(line: str, n: int) -> str:
    """A pattern that matches once `line` (a regex for one console line) has appeared n times."""
    return rf"(?:{line}[^\n]*\n[\s\S]*?){{{n}}}"


def schedule(options: dict, count: int) -> list[float]:
    """The first `count` retry delays without jitter (firmware/README.md: min, 2*min, ... max)."""
    return [float(min(options["backoff_min"] * 2**k, options["backoff_max"])) for k in range(count)]


def most_attempts(window: float, options: dict) -> int:
    """The most attempts the backoff schedule allows within `window` seconds (jitter only adds)."""
    attempts, elapsed = 1, 0.0
    for delay in schedule(options, 1000):
        elapsed += delay
        if elapsed > window:
            break
        attempts += 1
    return attempts


def served(board, fault: str) -> int:
    """How many calls the stand-ins failed under `fault` since the fault set was last written
    (each failed WLAN.connect() or ntptime.settime() is one)."""
    path = board.state_directory / "fault-counts.json"
    return json.loads(path.read_text()).get(fault, 0) if path.exists() else 0


def tls_counters(emu) -> dict:
    counters = emu.admin.stats()["counters"]
    names = ("dps.tls_handshakes", "hub.tls_handshakes", "dps.tls_failures", "hub.tls_failures")
    return {name: counters.get(name, 0) for name in names}


def assert_online(emu, device_id: str) -> None:
    assert emu.admin.telemetry(device_id, wait=20), "the hub stored no telemetry"
    assert emu.admin.device(device_id)["registrations"] == 1


def test_wifi_down_backs_off_without_registering_then_joins_and_sends(tmp_path, emu):
    identity = sas_group_identity(emu, "wifi-group", "wifi-dev", **FAST)
    before = tls_counters(emu)
    started = time.monotonic()
    board_dir = provisioned_board_dir(tmp_path, emu, identity)
    # A count far beyond the test's attempts, not "always": the stand-in then counts every join.
    with VirtualBoard(directory=board_dir, faults={"wifi_fail": 1000}) as board:
        board.wait_for_output(r"iotc: wifi failed reason=status=201")  # STAT_NO_AP_FOUND
        board.wait_for_output(nth(r"iotc: backoff stage=wifi", 3), timeout=20)
        window = time.monotonic() - started
        down = board.output()
        joins = served(board, "wifi_fail")
        during = tls_counters(emu)
        mark = board.output_mark()
        board.set_faults()  # the access point is back
        board.wait_for_output(r"iotc: wifi connected", since=mark)
        board.wait_for_output(r"iotc: dps registering", since=mark)
        board.wait_for_output(TELEMETRY, since=mark, timeout=30)
    delays = [float(d) for d in re.findall(r"iotc: backoff stage=wifi delay=([0-9.]+)", down)]
    assert delays[:3] == schedule(FAST, 3)  # exponential up to backoff_max, never immediate
    assert down.count("iotc: wifi failed") == len(delays)  # each failure is followed by a wait
    assert 3 <= joins <= most_attempts(window, FAST)  # no hot loop of joins
    assert "dps registering" not in down and "clock set" not in down
    assert during == before  # nothing reached the emulator while Wi-Fi was down
    assert_online(emu, "wifi-dev")


def test_clock_unset_and_ntp_silent_holds_back_tls_until_a_server_answers(tmp_path, emu):
    servers = ["ntp-a.example", "ntp-b.example"]
    options = {**FAST, "ntp_attempts": 1, "ntp_servers": servers}
    identity = sas_group_identity(emu, "clock-group", "clock-dev", **options)
    before = tls_counters(emu)
    faults = {"clock_unset": True, "ntp_fail": 1000}  # the board reads 2000-01-01 + uptime
    with VirtualBoard(directory=provisioned_board_dir(tmp_path, emu, identity), faults=faults) as board:
        failed = board.wait_for_output(r"iotc: clock failed servers=(\S+) reason=")
        board.wait_for_output(nth(r"iotc: backoff stage=clock", 2), timeout=20)
        down = board.output()
        asked = served(board, "ntp_fail")  # the next round starts only after a 2 s backoff
        during = tls_counters(emu)
        mark = board.output_mark()
        # NTP is back, but the first server stays silent once: the second one must be asked.
        board.set_faults(clock_unset=True, ntp_fail=1)
        clock = board.wait_for_output(r"iotc: clock set source=(\w+) server=(\S+) unix=(\d+)", since=mark)
        board.wait_for_output(r"iotc: dps registering", since=mark)
        board.wait_for_output(TELEMETRY, since=mark, timeout=30)
        silent_once = served(board, "ntp_fail")
    rounds = down.count("iotc: clock failed")
    assert failed.group(1) == ",".join(servers) and rounds >= 2
    assert asked == rounds * len(servers)  # every named server asked in every round, no more
    assert "dps registering" not in down and "hub connecting" not in down
    assert during == before  # no TLS handshake (nor attempt) while the clock was unset
    assert clock.group(1) == "ntp" and clock.group(2) == servers[1] and silent_once == 1
    assert abs(int(clock.group(3)) - time.time()) < 60  # true time, not the board's year 2000
    assert_online(emu, "clock-dev")


def test_ntp_silent_with_the_clock_already_set_goes_on_from_the_rtc(tmp_path, emu):
    # The board's clock holds true time (as after `iotcprov provision` set the RTC and a soft
    # reset): the firmware asks NTP, gets no answer and goes on with the RTC's time.
    options = {**FAST, "ntp_attempts": 1, "ntp_servers": ["ntp-a.example"]}
    identity = sas_group_identity(emu, "rtc-group", "rtc-dev", **options)
    board_dir = provisioned_board_dir(tmp_path, emu, identity)
    with VirtualBoard(directory=board_dir, faults={"ntp_fail": 1000}) as board:
        clock = board.wait_for_output(r"iotc: clock set source=(\w+) (\S+)")
        board.wait_for_output(TELEMETRY, timeout=30)
        asked = served(board, "ntp_fail")
        output = board.output()
    assert clock.group(1) == "rtc" and clock.group(2).startswith("unix=")  # no server answered
    assert asked == 1 and "clock failed" not in output
    assert_online(emu, "rtc-dev")
