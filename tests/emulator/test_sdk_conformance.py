"""Microsoft's azure-iot-device SDK as the device: DPS registration by every attestation, then the hub.

The SDK is an independent implementation of Azure's dialect; if it provisions and talks to the
emulator, the emulator speaks that dialect and not only the project's own.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import pytest
from azure.iot.device import X509, IoTHubDeviceClient, Message, MethodResponse, ProvisioningDeviceClient
from iotcprov.credentials.sas import derive_device_key

from tests.emulator import testpki

MODEL_ID = "dtmi:com:example:Thermostat;1"


def _ca_text(emulator) -> str:
    return Path(emulator.info["ca_cert"]).read_text()


def _register_sas(emulator, device_id: str, key: str):
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=emulator.info["dps"]["host"],
        registration_id=device_id,
        id_scope=emulator.info["id_scope"],
        symmetric_key=key,
        server_verification_cert=_ca_text(emulator),
    )
    client.provisioning_payload = {"modelId": MODEL_ID}
    return client.register()


def _register_x509(emulator, device_id: str, cert_file: str, key_file: str):
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=emulator.info["dps"]["host"],
        registration_id=device_id,
        id_scope=emulator.info["id_scope"],
        x509=X509(cert_file, key_file),
        server_verification_cert=_ca_text(emulator),
    )
    return client.register()


def _hub_sas(emulator, result, key: str) -> IoTHubDeviceClient:
    return IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key,
        hostname=result.registration_state.assigned_hub,
        device_id=result.registration_state.device_id,
        server_verification_cert=_ca_text(emulator),
        gateway_hostname=emulator.info["hub"]["host"],
        product_info=MODEL_ID,
    )


def _hub_x509(emulator, result, cert_file: str, key_file: str) -> IoTHubDeviceClient:
    return IoTHubDeviceClient.create_from_x509_certificate(
        x509=X509(cert_file, key_file),
        hostname=result.registration_state.assigned_hub,
        device_id=result.registration_state.device_id,
        server_verification_cert=_ca_text(emulator),
        gateway_hostname=emulator.info["hub"]["host"],
    )


def _wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_assigned(emulator, result, device_id: str, kind: str, name: str, attestation: str) -> None:
    assert result.status == "assigned"
    assert result.registration_state.assigned_hub == emulator.info["hub"]["name"]
    assert result.registration_state.device_id == device_id
    device = emulator.admin.device(device_id)
    assert device["enrollment"] == {"kind": kind, "name": name, "attestation": attestation}
    assert device["registrations"] == 1


def _send_telemetry_and_check(emulator, client: IoTHubDeviceClient, device_id: str) -> None:
    client.connect()
    message = Message(json.dumps({"temperature": 21.5}))
    message.content_type, message.content_encoding = "application/json", "utf-8"
    message.custom_properties["source"] = "sdk"
    client.send_message(message)
    received = emulator.admin.telemetry(device_id, wait=10)
    assert json.loads(received[-1]["body"]) == {"temperature": 21.5}
    assert received[-1]["properties"]["$.ct"] == "application/json"
    assert received[-1]["properties"]["$.ce"] == "utf-8"
    assert received[-1]["properties"]["source"] == "sdk"
    assert emulator.admin.device(device_id)["connected"] is True


def test_sas_group_device_uses_every_hub_feature(emulator):
    group = emulator.admin.create_sas_group("sdk-group")
    device_id = "sdk-sas-1"
    key = derive_device_key(group["primary_key"], device_id)
    result = _register_sas(emulator, device_id, key)
    _assert_assigned(emulator, result, device_id, "group", "sdk-group", "sas")
    assert emulator.admin.device(device_id)["dps_model_id"] == MODEL_ID

    client = _hub_sas(emulator, result, key)
    try:
        _send_telemetry_and_check(emulator, client, device_id)
        device = emulator.admin.device(device_id)
        assert device["hub_model_id"] == MODEL_ID and device["hub_connections"] == 1

        client.patch_twin_reported_properties({"firmware": "1.2.3", "nested": {"a": 1}})
        reported = emulator.admin.device(device_id)["twin"]["reported"]
        assert reported["firmware"] == "1.2.3" and reported["$version"] == 2
        assert client.get_twin()["reported"]["nested"] == {"a": 1}

        patches, methods, messages = queue.Queue(), queue.Queue(), queue.Queue()
        client.on_twin_desired_properties_patch_received = patches.put

        def answer(request):
            methods.put(request)
            response = {"echo": request.payload, "name": request.name}
            client.send_method_response(MethodResponse.create_from_method_request(request, 200, response))

        client.on_method_request_received = answer
        client.on_message_received = messages.put
        _wait_for(
            lambda: len(emulator.admin.device(device_id)["subscriptions"]) == 4, what="SDK subscriptions"
        )

        outcome = emulator.admin.set_desired(device_id, {"interval": 5})
        assert outcome == {"$version": 2, "delivered": True}
        assert patches.get(timeout=10) == {"interval": 5, "$version": 2}

        called = emulator.admin.invoke(device_id, "reboot", {"delay": 1}, timeout=10)
        assert called == {"status": 200, "payload": {"echo": {"delay": 1}, "name": "reboot"}}
        assert methods.get(timeout=1).name == "reboot"

        emulator.admin.send_c2d(device_id, "hello device", {"method-name": "blink"})
        c2d = messages.get(timeout=10)
        assert c2d.data == b"hello device"
        assert c2d.custom_properties["method-name"] == "blink"
        _wait_for(lambda: emulator.admin.device(device_id)["c2d_queued"] == 0, what="C2D acknowledged")
    finally:
        client.shutdown()
    _wait_for(lambda: not emulator.admin.device(device_id)["connected"], what="disconnect recorded")


def test_sas_individual_enrollment(emulator):
    enrollment = emulator.admin.enroll_sas("sdk-individual-1")
    result = _register_sas(emulator, "sdk-individual-1", enrollment["primary_key"])
    _assert_assigned(emulator, result, "sdk-individual-1", "individual", "sdk-individual-1", "sas")
    client = _hub_sas(emulator, result, enrollment["primary_key"])
    try:
        _send_telemetry_and_check(emulator, client, "sdk-individual-1")
    finally:
        client.shutdown()


def _verified_group(emulator, name: str, ca_cert, ca_key) -> None:
    created = emulator.admin.create_x509_group(name, testpki.pem(ca_cert))
    assert created["verified"] is False
    proof = testpki.make_verification_cert(created["verification_code"], ca_cert, ca_key)
    assert emulator.admin.verify_group(name, testpki.pem(proof))["verified"] is True


def test_x509_group_holding_a_root(emulator, tmp_path):
    root_key = testpki.generate_key()
    root = testpki.make_root_ca("sdk root", root_key)
    _verified_group(emulator, "sdk-x509-root", root, root_key)
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert("sdk-x509-1", device_key, root, root_key)
    cert_file, key_file = testpki.write_identity(tmp_path, "dev", [leaf], device_key)
    result = _register_x509(emulator, "sdk-x509-1", cert_file, key_file)
    _assert_assigned(emulator, result, "sdk-x509-1", "group", "sdk-x509-root", "x509")
    client = _hub_x509(emulator, result, cert_file, key_file)
    try:
        _send_telemetry_and_check(emulator, client, "sdk-x509-1")
    finally:
        client.shutdown()


def test_x509_group_holding_an_intermediate_with_chain_presented(emulator, tmp_path):
    root_key, intermediate_key = testpki.generate_key(), testpki.generate_key()
    root = testpki.make_root_ca("sdk chain root", root_key)
    intermediate = testpki.make_intermediate_ca("sdk intermediate", intermediate_key, root, root_key)
    _verified_group(emulator, "sdk-x509-intermediate", intermediate, intermediate_key)
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert("sdk-x509-2", device_key, intermediate, intermediate_key)
    cert_file, key_file = testpki.write_identity(tmp_path, "dev", [leaf, intermediate], device_key)
    result = _register_x509(emulator, "sdk-x509-2", cert_file, key_file)
    _assert_assigned(emulator, result, "sdk-x509-2", "group", "sdk-x509-intermediate", "x509")


def test_x509_group_holding_a_root_above_the_intermediate_the_device_presents(emulator, tmp_path):
    root_key, intermediate_key = testpki.generate_key(), testpki.generate_key()
    root = testpki.make_root_ca("sdk upper root", root_key)
    intermediate = testpki.make_intermediate_ca("sdk inner CA", intermediate_key, root, root_key)
    _verified_group(emulator, "sdk-x509-upper-root", root, root_key)
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert("sdk-x509-3", device_key, intermediate, intermediate_key)
    cert_file, key_file = testpki.write_identity(tmp_path, "dev", [leaf, intermediate], device_key)
    result = _register_x509(emulator, "sdk-x509-3", cert_file, key_file)
    _assert_assigned(emulator, result, "sdk-x509-3", "group", "sdk-x509-upper-root", "x509")


def test_x509_individual_self_signed(emulator, tmp_path):
    device_key = testpki.generate_key()
    cert = testpki.make_self_signed_device_cert("sdk-x509-self", device_key)
    enrolled = emulator.admin.enroll_x509("sdk-x509-self", testpki.pem(cert))
    assert len(enrolled["thumbprint"]) == 64
    cert_file, key_file = testpki.write_identity(tmp_path, "dev", [cert], device_key)
    result = _register_x509(emulator, "sdk-x509-self", cert_file, key_file)
    _assert_assigned(emulator, result, "sdk-x509-self", "individual", "sdk-x509-self", "x509")
    client = _hub_x509(emulator, result, cert_file, key_file)
    try:
        _send_telemetry_and_check(emulator, client, "sdk-x509-self")
    finally:
        client.shutdown()


@pytest.fixture(autouse=True)
def _no_secret_in_events(emulator):
    yield
    text = json.dumps(emulator.admin.events())
    assert "SharedAccessSignature" not in text and "sig=" not in text
