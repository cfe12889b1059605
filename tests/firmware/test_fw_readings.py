"""The chip temperature in the default telemetry: one API on the original ESP32, another on the
rest (docs/compatibility.md, chip table), nothing where the `esp32` module is missing."""

import gc
import sys
import types

import pytest
from iotc import readings


@pytest.fixture(autouse=True)
def _micropython_gc(monkeypatch):
    monkeypatch.setattr(gc, "mem_free", lambda: 50_000, raising=False)  # MicroPython's, not CPython's


def _fake_esp32(monkeypatch, **functions):
    module = types.ModuleType("esp32")
    for name, function in functions.items():
        setattr(module, name, function)
    monkeypatch.setitem(sys.modules, "esp32", module)


def test_original_esp32_reads_fahrenheit_and_reports_celsius(monkeypatch):
    _fake_esp32(monkeypatch, raw_temperature=lambda: 122)  # only raw_temperature on that chip
    assert readings.board_readings(5)["temperature"] == 50.0


def test_other_chips_read_celsius(monkeypatch):
    _fake_esp32(monkeypatch, mcu_temperature=lambda: 41)  # S2, S3, C2, C3, C5, C6, P4
    assert readings.board_readings(5)["temperature"] == 41


def test_no_esp32_module_no_temperature(monkeypatch):
    monkeypatch.setitem(sys.modules, "esp32", None)  # import raises ImportError (unix port)
    values = readings.board_readings(5)
    assert "temperature" not in values and values["uptime"] == 5
