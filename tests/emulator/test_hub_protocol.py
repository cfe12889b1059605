"""Hub rules with exact packets: keep-alive, token expiry, kicks, topics, twin codes, methods, C2D."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
from iotcprov.emulator import mqtt_codec as mqtt

from tests.emulator.helpers import (
    connect_hub_sas,
    events_for,
    hub_client,
    hub_token,
    hub_username,
    provision_sas,
)


@pytest.fixture(scope="module")
def device(emulator):
    enrollment = emulator.admin.enroll_sas("hub-dev")
    provision_sas(emulator, "hub-dev", enrollment["primary_key"])
    return "hub-dev", enrollment["primary_key"]


def _disconnect_reason(emulator, device_id: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = emulator.admin.device(device_id)
        if not record["connected"] and record["disconnect_reason"]:
            return record["disconnect_reason"]
        time.sleep(0.05)
    raise AssertionError("no disconnect recorded")


def test_unregistered_device_is_refused(emulator, device):
    _, key = device
    client = hub_client(emulator)
    try:
        connack = client.connect(
            "never-registered",
            hub_username(emulator, "never-registered"),
            hub_token(emulator, key, "never-registered"),
        )
    finally:
        client.close()
    assert connack.return_code == mqtt.REFUSED_NOT_AUTHORIZED
    assert "not registered" in events_for(emulator, "never-registered", "connect refused")[-1]["reason"]


def test_wrong_hub_name_and_expired_token_are_refused(emulator, device):
    device_id, key = device
    client = hub_client(emulator)
    try:
        wrong = f"other-hub/{device_id}/?api-version=2021-04-12"
        assert client.connect(device_id, wrong, hub_token(emulator, key, device_id)).return_code == 5
    finally:
        client.close()
    client, connack = connect_hub_sas(emulator, device_id, key, ttl=-10)
    client.close()
    assert connack.return_code == 5
    assert events_for(emulator, device_id, "connect refused")[-1]["reason"] == "token expired"


def test_keep_alive_enforced_at_one_and_a_half_times(emulator, device):
    device_id, key = device
    client, connack = connect_hub_sas(emulator, device_id, key, keep_alive=1)
    assert connack.return_code == 0
    started = time.monotonic()
    for _ in range(4):  # pings keep it open past 1.5 s
        time.sleep(0.5)
        client.send(mqtt.Pingreq())
        client.expect(mqtt.Pingresp)
    assert time.monotonic() - started > 1.5
    silent = time.monotonic()
    assert client.closed_by_server(timeout=5)
    assert time.monotonic() - silent > 1.3  # not before 1.5 x keep-alive; why: the reason below
    client.close()
    assert "keep-alive" in _disconnect_reason(emulator, device_id)


def test_session_ends_when_the_token_expires(emulator, device):
    device_id, key = device
    client, connack = connect_hub_sas(emulator, device_id, key, ttl=2)
    assert connack.return_code == 0
    assert client.closed_by_server(timeout=6)
    client.close()
    assert _disconnect_reason(emulator, device_id) == "token expired"


def test_second_connection_kicks_the_first(emulator, device):
    device_id, key = device
    first, _ = connect_hub_sas(emulator, device_id, key)
    before = emulator.admin.device(device_id)["hub_connections"]
    second, connack = connect_hub_sas(emulator, device_id, key)
    assert connack.return_code == 0
    assert first.closed_by_server(timeout=5)
    record = emulator.admin.device(device_id)
    assert record["connected"] is True and record["hub_connections"] == before + 1
    second.close()
    first.close()


@pytest.mark.parametrize(
    ("topic", "qos"),
    [
        ("devices/hub-dev/messages/unknown", 0),
        ("devices/other-device/messages/events/", 0),
        ("devices/hub-dev/messages/events/", 2),
    ],
)
def test_unknown_topics_and_qos2_close_the_connection(emulator, device, topic, qos):
    device_id, key = device
    client, _ = connect_hub_sas(emulator, device_id, key)
    client.publish(topic, b"{}", qos=qos)
    assert client.closed_by_server()
    client.close()


def test_twin_get_and_reported_patch_codes(emulator, device):
    device_id, key = device
    client, _ = connect_hub_sas(emulator, device_id, key)
    try:
        assert client.subscribe("$iothub/twin/res/#").return_codes == [1]
        client.publish("$iothub/twin/GET/?$rid=7")
        answer = client.expect(mqtt.Publish)
        client.send(mqtt.Puback(answer.packet_id))
        assert answer.topic == "$iothub/twin/res/200/?$rid=7"
        version = json.loads(answer.payload)["reported"]["$version"]
        client.publish("$iothub/twin/PATCH/properties/reported/?$rid=8", b'{"led": true, "gone": null}')
        answer = client.expect(mqtt.Publish)
        client.send(mqtt.Puback(answer.packet_id))
        assert answer.topic == f"$iothub/twin/res/204/?$rid=8&$version={version + 1}"
        client.publish("$iothub/twin/PATCH/properties/reported/?$rid=9", b"[1, 2]")
        assert client.expect(mqtt.Publish).topic == "$iothub/twin/res/400/?$rid=9"
        suback = client.subscribe("some/other/#")
        assert suback.return_codes == [mqtt.SUBACK_FAILURE]
    finally:
        client.close()
    assert emulator.admin.device(device_id)["twin"]["reported"]["led"] is True


def test_method_timeout_and_offline_device(emulator, device):
    device_id, key = device
    client, _ = connect_hub_sas(emulator, device_id, key)
    try:
        client.subscribe("$iothub/methods/POST/#")
        started = time.monotonic()
        result = emulator.admin.invoke(device_id, "slow", {"x": 1}, timeout=1)
        assert result["status"] == 504 and time.monotonic() - started > 0.9  # 504: the timeout ran out
        request = client.expect(mqtt.Publish)
        assert request.topic.startswith("$iothub/methods/POST/slow/?$rid=")
        assert json.loads(request.payload) == {"x": 1}
    finally:
        client.close()
    _disconnect_reason(emulator, device_id)
    assert emulator.admin.invoke(device_id, "any", timeout=1)["status"] == 404


def test_c2d_kept_for_persistent_session_dropped_by_clean_session(emulator, device):
    device_id, key = device
    emulator.admin.send_c2d(device_id, "while away", {"method-name": "reboot", "note": "a b&c"})
    assert emulator.admin.device(device_id)["c2d_queued"] == 1
    client, connack = connect_hub_sas(emulator, device_id, key, clean_session=False)
    try:
        client.subscribe(f"devices/{device_id}/messages/devicebound/#")
        message = client.expect(mqtt.Publish)
        assert message.payload == b"while away"
        bag = message.topic.split("/messages/devicebound/", 1)[1]
        properties = {
            urllib.parse.unquote(k): urllib.parse.unquote(v)
            for k, v in (p.split("=", 1) for p in bag.split("&"))
        }
        assert properties["method-name"] == "reboot" and properties["note"] == "a b&c"
        assert "$.mid" in properties
        client.send(mqtt.Puback(message.packet_id))
    finally:
        client.close()
    _disconnect_reason(emulator, device_id)
    deadline = time.monotonic() + 5
    while emulator.admin.device(device_id)["c2d_queued"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator.admin.device(device_id)["c2d_queued"] == 0

    # a persistent session keeps its subscriptions; CleanSession=1 drops queued messages
    emulator.admin.send_c2d(device_id, "second")
    client, connack = connect_hub_sas(emulator, device_id, key, clean_session=False)
    assert connack.session_present is True
    assert client.expect(mqtt.Publish).payload == b"second"
    client.close()
    _disconnect_reason(emulator, device_id)
    emulator.admin.send_c2d(device_id, "dropped")
    client, connack = connect_hub_sas(emulator, device_id, key, clean_session=True)
    client.close()
    assert connack.session_present is False
    assert emulator.admin.device(device_id)["c2d_queued"] == 0


def test_telemetry_records_properties_and_model_id(emulator, device):
    device_id, key = device
    client = hub_client(emulator)
    try:
        username = hub_username(emulator, device_id, model_id="dtmi:example:Raw;1")
        assert client.connect(device_id, username, hub_token(emulator, key, device_id)).return_code == 0
        client.publish(
            f"devices/{device_id}/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&k=a%2Bb",
            b'{"v": 1}',
            qos=1,
        )
        assert client.expect(mqtt.Puback)
    finally:
        client.close()
    message = emulator.admin.telemetry(device_id, wait=5)[-1]
    assert message["properties"] == {"$.ct": "application/json", "$.ce": "utf-8", "k": "a+b"}
    assert emulator.admin.device(device_id)["hub_model_id"] == "dtmi:example:Raw;1"


def test_x509_device_must_use_its_certificate_at_the_hub(emulator, tmp_path):
    from tests.emulator import testpki
    from tests.emulator.helpers import dps_client, dps_username, register

    key = testpki.generate_key()
    cert = testpki.make_self_signed_device_cert("hub-x509", key)
    emulator.admin.enroll_x509("hub-x509", testpki.pem(cert))
    files = testpki.write_identity(tmp_path, "dev", [cert], key)
    client = dps_client(emulator, files)
    try:
        assert client.connect("hub-x509", dps_username(emulator, "hub-x509")).return_code == 0
        assert register(client, "hub-x509")[1]["status"] == "assigned"
    finally:
        client.close()
    some_key = emulator.admin.enroll_sas("hub-x509-other")["primary_key"]
    refused, connack = connect_hub_sas(emulator, "hub-x509", some_key)
    refused.close()
    assert connack.return_code == 5
    assert "certificate" in events_for(emulator, "hub-x509", "connect refused")[-1]["reason"]
    accepted = hub_client(emulator, files)
    try:
        assert accepted.connect("hub-x509", hub_username(emulator, "hub-x509")).return_code == 0
    finally:
        accepted.close()
