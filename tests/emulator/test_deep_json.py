"""Deeply nested JSON from a device is answered 400, as the services do, and the connection stays."""

from __future__ import annotations

import json

import pytest
from iotcprov.emulator import mqtt_codec as mqtt

from tests.emulator.helpers import (
    connect_hub_sas,
    dps_answer,
    dps_client,
    dps_token,
    dps_username,
    events_for,
    provision_sas,
    register,
)

LEVELS = 100_000  # far past the interpreter's recursion limit, still under 256 KB
DEEP = b"[" * LEVELS + b"]" * LEVELS


def _nested(levels: int) -> dict:
    """An object with `levels` objects nested below it."""
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return {"top": value}


@pytest.fixture(scope="module")
def device(emulator):
    enrollment = emulator.admin.enroll_sas("deep-dev")
    provision_sas(emulator, "deep-dev", enrollment["primary_key"])
    return "deep-dev", enrollment["primary_key"]


def _twin_answer(client) -> tuple[str, bytes]:
    packet = client.expect(mqtt.Publish)
    if packet.qos:
        client.send(mqtt.Puback(packet.packet_id))
    return packet.topic, packet.payload


def test_deep_reported_patch_gets_400_and_the_connection_stays(emulator, device):
    device_id, key = device
    client, _ = connect_hub_sas(emulator, device_id, key)
    try:
        client.subscribe("$iothub/twin/res/#")
        client.publish("$iothub/twin/PATCH/properties/reported/?$rid=7", b'{"a": ' + DEEP + b"}", qos=1)
        assert isinstance(client.receive(), mqtt.Puback)
        topic, body = _twin_answer(client)
        assert topic == "$iothub/twin/res/400/?$rid=7"
        assert "nested deeper" in json.loads(body)["message"]
        client.publish("$iothub/twin/PATCH/properties/reported/?$rid=8", json.dumps(_nested(11)).encode())
        topic, _ = _twin_answer(client)
        assert topic == "$iothub/twin/res/400/?$rid=8"  # IoT Hub: at most 10 levels
        client.publish("$iothub/twin/PATCH/properties/reported/?$rid=9", json.dumps(_nested(10)).encode())
        topic, _ = _twin_answer(client)
        assert topic.startswith("$iothub/twin/res/204/?$rid=9&$version=")  # same connection
    finally:
        client.close()
    assert not [e for e in emulator.admin.events() if e["kind"] == "internal error"]
    assert "nested deeper" in events_for(emulator, device_id, "reported patch refused")[0]["reason"]
    assert emulator.admin.device(device_id)["twin"]["reported"]["top"]["n"]["n"]


def test_deep_dps_payload_gets_400_in_dps_shape_and_the_connection_stays(emulator):
    enrollment = emulator.admin.enroll_sas("deep-reg")
    client = dps_client(emulator)
    try:
        token = dps_token(emulator, enrollment["primary_key"], "deep-reg")
        assert client.connect("deep-reg", dps_username(emulator, "deep-reg"), token).return_code == 0
        client.subscribe("$dps/registrations/res/#")
        body = b'{"registrationId": "deep-reg", "payload": ' + DEEP + b"}"
        client.publish("$dps/registrations/PUT/iotdps-register/?$rid=1", body)
        status, answer, query = dps_answer(client)
        assert (status, query["$rid"]) == (400, "1")
        assert answer["errorCode"] == 400004 and answer["trackingId"]
        assert "nested deeper" in answer["message"]
        status, answer = register(client, "deep-reg", {"modelId": "dtmi:x:y;1"}, rid=2)  # same connection
        assert (status, answer["status"]) == (200, "assigned")
    finally:
        client.close()
    assert not [e for e in emulator.admin.events() if e["kind"] == "internal error"]
