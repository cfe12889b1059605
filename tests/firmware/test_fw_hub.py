"""IoT Hub CONNECT fields, telemetry topics, property bags and incoming-topic parsing
(firmware/iotc/hub.py, incoming.py) on CPython."""

import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iotc import hub, incoming


def test_username_has_api_version_and_encoded_model_id():
    name = hub.username("iotc-1.azure-devices.net", "dev-1", "dtmi:com:example:Thermostat;1")
    assert name.startswith(
        "iotc-1.azure-devices.net/dev-1/?api-version=2021-04-12&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"
        "&DeviceClientType=iotc-micropython%2F"
    )
    assert "model-id" not in hub.username("h", "d", None)


def test_telemetry_topic_marks_json_and_encodes_properties():
    assert hub.telemetry_topic("dev-1") == "devices/dev-1/messages/events/$.ct=application%2Fjson&$.ce=utf-8"
    topic = hub.telemetry_topic("dev-1", [("alert level", "high/1")], component="thermostat1")
    assert topic == (
        "devices/dev-1/messages/events/$.ct=application%2Fjson&$.ce=utf-8&$.sub=thermostat1&alert%20level=high%2F1"
    )


def test_other_publish_topics():
    assert hub.twin_get_topic(3) == "$iothub/twin/GET/?$rid=3"
    assert hub.twin_patch_topic("4") == "$iothub/twin/PATCH/properties/reported/?$rid=4"
    assert hub.method_response_topic(200, "a1") == "$iothub/methods/res/200/?$rid=a1"
    assert hub.c2d_subscribe_topic("dev-1") == "devices/dev-1/messages/devicebound/#"


def test_c2d_topic_gives_decoded_properties():
    found = incoming.parse_topic(
        "dev-1", "devices/dev-1/messages/devicebound/%24.mid=m1&method-name=reboot&note=a%20b%2Fc"
    )
    assert found.kind == "c2d"
    assert found.properties == {"$.mid": "m1", "method-name": "reboot", "note": "a b/c"}


def test_method_request_topic():
    found = incoming.parse_topic("dev-1", "$iothub/methods/POST/thermostat*getMaxMin/?$rid=42")
    assert (found.kind, found.name, found.rid) == ("method", "thermostat*getMaxMin", "42")
    assert incoming.parse_topic("dev-1", "$iothub/methods/POST/reboot/") is None


def test_twin_topics():
    response = incoming.parse_topic("dev-1", "$iothub/twin/res/204/?$rid=5&$version=12")
    assert (response.kind, response.status, response.rid, response.version) == (
        "twin-response",
        204,
        "5",
        12,
    )
    desired = incoming.parse_topic("dev-1", "$iothub/twin/PATCH/properties/desired/?$version=7")
    assert (desired.kind, desired.version) == ("twin-desired", 7)


@pytest.mark.parametrize(
    "topic",
    ["devices/dev-2/messages/devicebound/x=1", "$iothub/twin/res/abc/?$rid=1", "random/topic", "$dps/x"],
)
def test_foreign_topics_are_not_claimed(topic):
    assert incoming.parse_topic("dev-1", topic) is None


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=5))
def test_property_bag_round_trips_and_matches_urllib(properties):
    bag = hub.encode_bag(properties)
    assert incoming.decode_bag(bag) == properties
    assert bag == urllib.parse.urlencode(properties, quote_via=urllib.parse.quote, safe="")


def test_unquote_leaves_malformed_escapes_alone():
    assert incoming.unquote("100%") == "100%"
    assert incoming.unquote("%zz%2") == "%zz%2"
    assert incoming.unquote("%E2%82%AC+x") == "€+x"
