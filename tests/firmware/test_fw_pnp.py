"""IoT Central / Plug and Play payload rules (firmware/iotc/pnp.py), the creation-time stamp of
buffered telemetry (hub.py, clock.py) and the feature options (config.py) on CPython. The same
functions run on the MicroPython unix port in test_fw_pnp_parity.py."""

import pytest
from iotc import ConfigError, clock, config, hub, pnp


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"delay": 5}', {"delay": 5}),
        (b"null", None),
        (b"", None),
        (b"2.5", 2.5),
        (b"not json", "not json"),
        (b"\xff\xfe", b"\xff\xfe"),
    ],
)
def test_request_payloads(body, expected):
    assert pnp.parse_payload(body) == expected


def test_desired_items_of_a_patch_with_root_properties_and_components():
    patch = {
        "targetTemperature": 22,
        "thermostat1": {"__t": "c", "targetTemperature": 30, "$ignored": 1},
        "thermostat2": {"targetTemperature": 18},  # a component known by name, not marked
        "config": {"mode": "eco"},  # an object-valued root property
        "removed": None,
        "$version": 7,
    }
    items = pnp.desired_items(patch, ["thermostat2"])
    assert sorted(items, key=repr) == sorted(
        [
            (None, "targetTemperature", 22),
            ("thermostat1", "targetTemperature", 30),
            ("thermostat2", "targetTemperature", 18),
            (None, "config", {"mode": "eco"}),
        ],
        key=repr,
    )
    assert pnp.desired_items(None, []) == [] and pnp.desired_items({"$version": 3}, []) == []


def test_desired_version_prefers_the_document_and_falls_back_to_the_topic():
    assert pnp.desired_version({"a": 1, "$version": 9}, 4) == 9
    assert pnp.desired_version({"a": 1}, 4) == 4
    assert pnp.desired_version({"$version": True}) is None
    assert pnp.desired_version(None) is None


def test_acked_version_reads_root_and_component_acknowledgements():
    reported = {
        "targetTemperature": {"value": 21, "ac": 200, "ad": "completed", "av": 5},
        "thermostat1": {"__t": "c", "targetTemperature": {"value": 30, "ac": 200, "av": 6}},
        "plain": 3,
        "$version": 11,
    }
    assert pnp.acked_version(reported, None, "targetTemperature") == 5
    assert pnp.acked_version(reported, "thermostat1", "targetTemperature") == 6
    assert pnp.acked_version(reported, "thermostat2", "targetTemperature") is None
    assert pnp.acked_version(reported, None, "plain") is None
    assert pnp.acked_version(reported, None, "missing") is None
    assert pnp.acked_version(None, None, "x") is None


def test_property_results():
    assert pnp.property_result(None, 22) == (22, 200, "completed")
    assert pnp.property_result((21, 400, "must be 5-35"), 50) == (21, 400, "must be 5-35")
    assert pnp.property_result((21, 400), 50) == (21, 400, "refused")
    assert pnp.property_result((21, 203), 21) == (21, 203, "completed")
    assert pnp.property_result(21.5, 21.49) == (21.5, 200, "completed")
    with pytest.raises(ValueError, match="ac must be"):
        pnp.property_result((1, "ok"), 1)


def test_ack_and_merge_build_iot_centrals_reported_patch():
    patch = {}
    pnp.merge(patch, {"targetTemperature": pnp.ack(22, 200, "completed", 7)})
    pnp.merge(patch, {"targetTemperature": pnp.ack(30, 200, "completed", 7)}, "thermostat1")
    pnp.merge(patch, {"serialNumber": "A1"}, "thermostat1")
    assert patch == {
        "targetTemperature": {"value": 22, "ac": 200, "ad": "completed", "av": 7},
        "thermostat1": {
            "__t": "c",
            "targetTemperature": {"value": 30, "ac": 200, "ad": "completed", "av": 7},
            "serialNumber": "A1",
        },
    }


def test_command_results():
    assert pnp.command_result({"maxTemp": 3}) == (200, {"maxTemp": 3})
    assert pnp.command_result(None) == (200, None)
    assert pnp.command_result((409, {"error": "busy"})) == (409, {"error": "busy"})
    assert pnp.command_result([1, 2]) == (200, [1, 2])  # a list is a payload, not a status
    with pytest.raises(ValueError, match="status must be"):
        pnp.command_result((True, {}))
    with pytest.raises(ValueError, match="status must be"):
        pnp.command_result((42, {}))


def test_error_payload_names_the_exception():
    assert pnp.error_payload(ValueError("sensor not ready")) == {"error": "ValueError: sensor not ready"}
    assert pnp.error_payload(KeyError()) == {"error": "KeyError"}
    assert len(pnp.error_payload(RuntimeError("x" * 500))["error"]) == 200


def test_buffered_telemetry_carries_its_creation_time():
    stamp = clock.iso_utc(1745235016)
    assert stamp == "2025-04-21T11:30:16Z"
    topic = hub.telemetry_topic("dev-1", {"n": 1}, None, stamp)
    assert topic.endswith("&n=1&iothub-creation-time-utc=2025-04-21T11%3A30%3A16Z")
    assert "iothub-creation-time-utc" not in hub.telemetry_topic("dev-1")


def test_buffer_size_and_watchdog_options():
    defaults = config.options({})
    assert defaults.buffer_size == 20
    assert defaults.watchdog == 0  # on by default on an ESP32 only (sys.platform == "esp32")
    chosen = config.options({"buffer_size": 0, "watchdog": 45, "connect_timeout": 20, "response_timeout": 35})
    assert (chosen.buffer_size, chosen.watchdog) == (0, 45)
    with pytest.raises(ConfigError, match=r"options\.buffer_size must be a whole number 0-500"):
        config.options({"buffer_size": 501})
    with pytest.raises(ConfigError, match=r"options\.watchdog must be 0 \(off\) or 40-3600 s"):
        config.options({"watchdog": 39})  # response_timeout 30 + 10: a read could starve it
    with pytest.raises(ConfigError, match=r"options\.watchdog must be a whole number 0-3600"):
        config.options({"watchdog": "2m"})


def test_watchdog_default_follows_the_platform(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "platform", "esp32")
    options = config.options({})
    assert options.watchdog == 120
    # the default outlasts the longest unfed wait with the default timeouts, by a wide margin
    assert options.watchdog >= max(options.connect_timeout, options.response_timeout) + 60
    assert config.options({"watchdog": 0}).watchdog == 0
    # long timeouts lift the default above them instead of making the options invalid on an ESP32
    assert config.options({"response_timeout": 300}).watchdog == 310
    assert config.options({"response_timeout": 30}).watchdog == 120
