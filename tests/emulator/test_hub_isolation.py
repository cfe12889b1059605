"""One device cannot act for another on the hub: answer its methods, read its C2D, use its identity."""

from __future__ import annotations

import json
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from iotcprov.emulator import mqtt_codec as mqtt

from tests.emulator import testpki
from tests.emulator.helpers import (
    connect_hub_sas,
    dps_client,
    dps_username,
    events_for,
    hub_client,
    hub_username,
    provision_sas,
    register,
)


@pytest.fixture(scope="module")
def devices(emulator):
    keys = {}
    for device_id in ("iso-a", "iso-b"):
        keys[device_id] = emulator.admin.enroll_sas(device_id)["primary_key"]
        provision_sas(emulator, device_id, keys[device_id])
    return keys


def _method_request(client) -> tuple[str, str]:
    """(method name, $rid) of the next method call the device receives."""
    request = client.expect(mqtt.Publish)
    name, _, query = request.topic[len("$iothub/methods/POST/") :].partition("/?")
    return name, dict(urllib.parse.parse_qsl(query))["$rid"]


def test_only_the_called_device_answers_its_method(emulator, devices):
    intruder, _ = connect_hub_sas(emulator, "iso-a", devices["iso-a"])
    target, _ = connect_hub_sas(emulator, "iso-b", devices["iso-b"])
    try:
        intruder.subscribe("$iothub/methods/POST/#")
        target.subscribe("$iothub/methods/POST/#")
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(emulator.admin.invoke, "iso-b", "reboot", {"delay": 1}, 10)
            name, rid = _method_request(target)
            assert name == "reboot"
            # the intruder answers with the very $rid the target got (the strongest case: not guessed)
            intruder.publish(f"$iothub/methods/res/200/?$rid={rid}", b'{"by": "intruder"}')
            intruder.publish("$iothub/methods/res/200/?$rid=1", b'{"by": "intruder"}')
            intruder.send(mqtt.Pingreq())
            assert isinstance(intruder.receive(), mqtt.Pingresp)  # the hub has handled both answers
            assert not call.done()
            target.publish(f"$iothub/methods/res/201/?$rid={rid}", b'{"by": "target"}')
            assert call.result(timeout=10) == {"status": 201, "payload": {"by": "target"}}
        ignored = events_for(emulator, "iso-a", "method response ignored")
        assert len(ignored) == 2 and "no call to this device" in ignored[-1]["reason"]
    finally:
        intruder.close()
        target.close()


def test_method_request_ids_are_random_per_call(emulator, devices):
    client, _ = connect_hub_sas(emulator, "iso-b", devices["iso-b"])
    try:
        client.subscribe("$iothub/methods/POST/#")
        rids = []
        with ThreadPoolExecutor(1) as pool:
            for _ in range(3):
                call = pool.submit(emulator.admin.invoke, "iso-b", "ping", None, 10)
                _name, rid = _method_request(client)
                rids.append(rid)
                client.publish(f"$iothub/methods/res/200/?$rid={rid}", json.dumps({"rid": rid}).encode())
                assert call.result(timeout=10)["payload"] == {"rid": rid}
    finally:
        client.close()
    assert len(set(rids)) == 3
    assert all(len(rid) >= 16 for rid in rids)  # 64 random bits, not a counter


def test_subscribing_to_another_devices_c2d_is_refused_and_logged(emulator, devices):
    emulator.admin.send_c2d("iso-b", "for b only")
    client, _ = connect_hub_sas(emulator, "iso-a", devices["iso-a"])
    try:
        foreign = ["devices/iso-b/messages/devicebound/#", "devices/+/messages/devicebound/#", "#"]
        suback = client.subscribe(*foreign, "devices/iso-a/messages/devicebound/#")
        assert suback.return_codes == [mqtt.SUBACK_FAILURE] * 3 + [1]
        client.send(mqtt.Pingreq())
        assert isinstance(client.receive(), mqtt.Pingresp)  # nothing of iso-b's came first
    finally:
        client.close()
    assert emulator.admin.device("iso-b")["c2d_queued"] == 1
    refused = events_for(emulator, "iso-a", "subscribe refused")
    assert [e["reason"] for e in refused] == [
        f"topic filter {foreign[0]} is not this device's own C2D topic",
        f"topic filter {foreign[1]} is not this device's own C2D topic",
        "topic filter # is not one a device may subscribe to",
    ]


def _x509_group(emulator, name: str):
    key = testpki.generate_key()
    root = testpki.make_root_ca(f"{name} root", key)
    created = emulator.admin.create_x509_group(name, testpki.pem(root))
    proof = testpki.make_verification_cert(created["verification_code"], root, key)
    emulator.admin.verify_group(name, testpki.pem(proof))
    return root, key


def _identity(tmp_path, device_id: str, name: str, group) -> tuple[str, str]:
    root, root_key = group
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert(device_id, device_key, root, root_key)
    return testpki.write_identity(tmp_path, name, [leaf], device_key)


def test_certificate_of_another_enrollment_is_refused_by_the_hub(emulator, tmp_path):
    own = _identity(tmp_path, "iso-x509", "own", _x509_group(emulator, "iso-own"))
    other = _identity(tmp_path, "iso-x509", "other", _x509_group(emulator, "iso-other"))
    client = dps_client(emulator, own)
    try:
        assert client.connect("iso-x509", dps_username(emulator, "iso-x509")).return_code == 0
        status, answer = register(client, "iso-x509")
        assert (status, answer["status"]) == (200, "assigned")
    finally:
        client.close()
    for identity, expected in ((other, mqtt.REFUSED_NOT_AUTHORIZED), (own, mqtt.ACCEPTED)):
        client = hub_client(emulator, identity)
        try:
            assert client.connect("iso-x509", hub_username(emulator, "iso-x509")).return_code == expected
        finally:
            client.close()
    refused = events_for(emulator, "iso-x509", "connect refused")
    assert [e["endpoint"] for e in refused] == ["hub"]
    assert refused[0]["reason"] == "certificate belongs to another enrollment than the device's"
