"""The DTDL models in firmware/models/ match what the firmware sends, so a user can import them
into an IoT Central device template: valid DTDL v2 JSON, the model ID main.py announces, and
every telemetry, property and command name of the thermostat and of the device information."""

import json
import re

import pytest
from fw_rig import FIRMWARE_DIR

MODEL = FIRMWARE_DIR / "models" / "thermostat.json"
SEGMENT = r"[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?"
DTMI = re.compile(rf"^dtmi:{SEGMENT}(?::{SEGMENT})*;[1-9][0-9]{{0,8}}$")
NAME = re.compile(rf"^{SEGMENT}$")
SCHEMAS = {"boolean", "date", "dateTime", "double", "duration", "float", "integer", "long", "string", "time"}
# Read-only properties every device reports (readings.device_info, session's buffer count).
DEVICE_PROPERTIES = ("firmwareVersion", "micropythonVersion", "board", "macAddress", "bufferDropped")


@pytest.fixture(scope="module")
def model() -> dict:
    return json.loads(MODEL.read_text())


def contents_by_name(model: dict) -> dict:
    return {item["name"]: item for item in model["contents"]}


def types(item: dict) -> set:
    kind = item["@type"]
    return {kind} if isinstance(kind, str) else set(kind)


def test_model_is_dtdl_v2_interface(model):
    assert model["@context"] == "dtmi:dtdl:context;2"
    assert model["@type"] == "Interface" and DTMI.match(model["@id"])
    names = [item["name"] for item in model["contents"]]
    assert len(names) == len(set(names))
    for item in model["contents"]:
        assert NAME.match(item["name"]) and len(item["name"]) <= 64, item["name"]
        assert types(item) & {"Telemetry", "Property", "Command"}, item
        if "Command" not in types(item):
            assert item["schema"] in SCHEMAS, item
        if types(item) & {"Temperature"}:
            assert item["unit"] == "degreeCelsius"


def test_main_announces_the_model_and_uses_its_names(model):
    main = (FIRMWARE_DIR / "main.py").read_text()
    assert f'model_id="{model["@id"]}"' in main
    items = contents_by_name(model)
    assert "Telemetry" in types(items["temperature"]) and '{"temperature": ' in main
    assert items["targetTemperature"]["writable"] is True
    assert 'on_property("targetTemperature"' in main
    assert "Command" in types(items["getMaxMinReport"]) and 'on_command("getMaxMinReport"' in main
    fields = {f["name"] for f in items["getMaxMinReport"]["response"]["schema"]["fields"]}
    for field in fields:
        assert f'"{field}": ' in main
    assert fields == {"maxTemp", "minTemp", "avgTemp"}


def test_device_information_is_in_the_model(model):
    items = contents_by_name(model)
    sources = "".join((FIRMWARE_DIR / "iotc" / name).read_text() for name in ("readings.py", "session.py"))
    for name in DEVICE_PROPERTIES:
        assert "Property" in types(items[name]) and not items[name].get("writable"), name
        assert f'"{name}"' in sources, f"the firmware no longer reports {name}"
