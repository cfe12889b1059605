"""firmware/iotc/clock.py: Unix time from either epoch, and no token while the clock is unset.

On the MicroPython unix port, with an ESP32-like `time` module standing in for the chip's RTC
(the port's own clock counts from 1970; an ESP32's counts from 2000 and starts there at boot)."""

import time

import pytest
from iotcprov.credentials import sas
from sas_rig import load_firmware_module

clock = load_firmware_module("clock")
NOW = 1_800_000_000  # 2027-01-15, a set clock

# Installed before `iotc.clock` is imported: gmtime/time like an ESP32, whose epoch is 2000-01-01.
ESP32_TIME_STAND_IN = """
import sys, json, time as unix_time

class Esp32Time:
    seconds_since_2000 = 0
    def time(self):
        return self.seconds_since_2000
    def gmtime(self, secs=None):
        if secs is None:
            secs = self.seconds_since_2000
        return unix_time.gmtime(secs + 946684800)

board_time = Esp32Time()
sys.modules["time"] = board_time
from iotc import clock, sas
"""


def test_esp32_epoch_clock_before_and_after_ntp(run_micropython):
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    result = run_micropython(
        ESP32_TIME_STAND_IN
        + f"""
out = {{"epoch_year": board_time.gmtime(0)[0]}}
board_time.seconds_since_2000 = 42  # just booted: the RTC starts at 2000-01-01
out["boot_unix"] = clock.unix_time()
out["boot_set"] = clock.clock_is_set()
try:
    token = sas.hub_token({key!r}, "h.example.net", "dev-1", clock.expiry_in(3600))
    out["boot_token"] = token
except clock.ClockNotSet as error:
    out["boot_refused"] = str(error)
board_time.seconds_since_2000 = {NOW} - 946684800  # after ntptime.settime()
out["ntp_unix"] = clock.unix_time()
out["ntp_set"] = clock.clock_is_set()
out["ntp_token"] = sas.hub_token({key!r}, "h.example.net", "dev-1", clock.expiry_in(3600))
print(json.dumps(out))
"""
    )
    assert result["epoch_year"] == 2000
    assert result["boot_unix"] == 946684842
    assert result["boot_set"] is False
    assert "boot_token" not in result and "clock not set" in result["boot_refused"]
    assert result["ntp_unix"] == NOW and result["ntp_set"] is True
    assert result["ntp_token"] == sas.hub_token(key, "h.example.net", "dev-1", NOW + 3600)


def test_unix_port_clock_is_unix_time(run_micropython):
    before = int(time.time())
    result = run_micropython(
        "import json\nfrom iotc import clock\n"
        "print(json.dumps([clock.unix_time(), clock.clock_is_set(), clock.expiry_in(60)]))"
    )
    after = int(time.time())
    unix_now, is_set, expiry = result
    assert before <= unix_now <= after and is_set is True
    assert unix_now + 60 <= expiry <= after + 60


def test_clock_floor_is_2025():
    assert not clock.clock_is_set(clock.SANE_FLOOR - 1)
    assert clock.clock_is_set(clock.SANE_FLOOR)
    assert time.gmtime(clock.SANE_FLOOR)[:3] == (2025, 1, 1)
    assert time.gmtime(clock.EPOCH_2000_OFFSET)[:3] == (2000, 1, 1)


def test_expiry_in_refuses_unset_clock_and_bad_ttl():
    assert clock.expiry_in(3600, now=NOW) == NOW + 3600
    with pytest.raises(clock.ClockNotSet):
        clock.expiry_in(3600, now=clock.EPOCH_2000_OFFSET + 42)
    with pytest.raises(ValueError):
        clock.expiry_in(0, now=NOW)
