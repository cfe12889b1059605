"""DPS refuses bad credentials: nothing assigned, the reason logged, no secret in the log."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from iotcprov.credentials import sas
from iotcprov.emulator import mqtt_codec as mqtt

from tests.emulator import testpki
from tests.emulator.helpers import dps_client, dps_token, dps_username, events_for, register


@pytest.fixture(scope="module")
def group(emulator):
    return emulator.admin.create_sas_group("refusal-group")


def _refused(emulator, device_id: str, password: str | None, cert=None, username: str | None = None) -> str:
    client = dps_client(emulator, cert)
    try:
        connack = client.connect(device_id, username or dps_username(emulator, device_id), password)
        assert connack.return_code == mqtt.REFUSED_NOT_AUTHORIZED
        assert client.closed_by_server()
    finally:
        client.close()
    with pytest.raises(Exception, match="no device"):
        emulator.admin.device(device_id)
    refusals = events_for(emulator, device_id, "connect refused")
    assert refusals, "the refusal was not logged"
    logged = json.dumps(refusals)
    if password:
        assert password not in logged and "SharedAccessSignature" not in logged
    return refusals[-1]["reason"]


def test_wrong_signature(emulator, group):
    wrong_key = base64.b64encode(secrets.token_bytes(32)).decode()
    token = dps_token(emulator, sas.derive_device_key(wrong_key, "ref-sig"), "ref-sig")
    assert _refused(emulator, "ref-sig", token) == "token signature does not match the key"


def test_expired_token(emulator, group):
    key = sas.derive_device_key(group["primary_key"], "ref-expired")
    token = sas.dps_token(key, emulator.info["id_scope"], "ref-expired", int(time.time()) - 5)
    assert _refused(emulator, "ref-expired", token) == "token expired"


def test_token_for_another_device(emulator, group):
    other_key = sas.derive_device_key(group["primary_key"], "ref-other")
    token = dps_token(emulator, other_key, "ref-other")
    assert _refused(emulator, "ref-mine", token) == "token resource does not match this device"


def test_token_for_another_scope(emulator, group):
    key = sas.derive_device_key(group["primary_key"], "ref-scope")
    token = sas.dps_token(key, "0ne00000000", "ref-scope", int(time.time()) + 600)
    assert _refused(emulator, "ref-scope", token) == "token resource does not match this device"
    username = dps_username(emulator, "ref-scope2", scope="0ne00000000")
    reason = _refused(emulator, "ref-scope2", token, username=username)
    assert "ID scope" in reason


def test_policy_other_than_registration(emulator, group):
    key = sas.derive_device_key(group["primary_key"], "ref-policy")
    token = sas.build_token(
        key,
        sas.dps_resource(emulator.info["id_scope"], "ref-policy"),
        int(time.time()) + 600,
        policy="iothubowner",
    )
    assert "policy" in _refused(emulator, "ref-policy", token)


def test_secondary_key_and_token_without_policy_are_accepted(emulator, group):
    key = sas.derive_device_key(group["secondary_key"], "ref-secondary")
    token = sas.build_token(
        key, sas.dps_resource(emulator.info["id_scope"], "ref-secondary"), int(time.time()) + 60
    )
    client = dps_client(emulator)
    try:
        assert (
            client.connect("ref-secondary", dps_username(emulator, "ref-secondary"), token).return_code == 0
        )
        status, answer = register(client, "ref-secondary")
        assert (status, answer["status"]) == (200, "assigned")
    finally:
        client.close()


def test_disabled_enrollment_gets_disabled_status_and_nothing_assigned(emulator):
    enrollment = emulator.admin.enroll_sas("ref-disabled")
    emulator.admin.set_enrollment_enabled("ref-disabled", False)
    client = dps_client(emulator)
    try:
        token = dps_token(emulator, enrollment["primary_key"], "ref-disabled")
        assert client.connect("ref-disabled", dps_username(emulator, "ref-disabled"), token).return_code == 0
        status, answer = register(client, "ref-disabled")
    finally:
        client.close()
    assert status == 200 and answer["status"] == "disabled"
    assert "assignedHub" not in answer["registrationState"]
    with pytest.raises(Exception, match="no device"):
        emulator.admin.device("ref-disabled")
    assert "disabled" in events_for(emulator, "ref-disabled", "register disabled")[-1]["reason"]


def test_disabled_group(emulator):
    group = emulator.admin.create_sas_group("disabled-group")
    emulator.admin.set_group_enabled("disabled-group", False)
    # another SAS group exists (refusal-group): the signature picks this one
    key = sas.derive_device_key(group["primary_key"], "ref-disabled-group")
    client = dps_client(emulator)
    try:
        token = dps_token(emulator, key, "ref-disabled-group")
        assert (
            client.connect(
                "ref-disabled-group", dps_username(emulator, "ref-disabled-group"), token
            ).return_code
            == 0
        )
        status, answer = register(client, "ref-disabled-group")
    finally:
        client.close()
    assert (status, answer["status"]) == (200, "disabled")


# ---------------------------------------------------------------- X.509


@pytest.fixture(scope="module")
def x509_root(emulator):
    key = testpki.generate_key()
    root = testpki.make_root_ca("refusals root", key)
    created = emulator.admin.create_x509_group("refusal-x509", testpki.pem(root))
    proof = testpki.make_verification_cert(created["verification_code"], root, key)
    emulator.admin.verify_group("refusal-x509", testpki.pem(proof))
    return root, key


def test_certificate_from_unverified_ca(emulator, tmp_path):
    key = testpki.generate_key()
    root = testpki.make_root_ca("unverified root", key)
    emulator.admin.create_x509_group("unverified-x509", testpki.pem(root))
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert("ref-unverified", device_key, root, key)
    files = testpki.write_identity(tmp_path, "dev", [leaf], device_key)
    assert "unverified" in _refused(emulator, "ref-unverified", None, files)


def test_wrong_proof_of_possession_is_refused(emulator):
    key = testpki.generate_key()
    root = testpki.make_root_ca("pop root", key)
    created = emulator.admin.create_x509_group("pop-x509", testpki.pem(root))
    other_key = testpki.generate_key()
    other = testpki.make_root_ca("pop root", other_key)  # same name, another key
    forged = testpki.make_verification_cert(created["verification_code"], other, other_key)
    with pytest.raises(Exception, match="proof of possession"):
        emulator.admin.verify_group("pop-x509", testpki.pem(forged))
    wrong_code = testpki.make_verification_cert("not-the-code", root, key)
    with pytest.raises(Exception, match="verification code"):
        emulator.admin.verify_group("pop-x509", testpki.pem(wrong_code))


def test_leaf_common_name_differs_from_registration_id(emulator, x509_root, tmp_path):
    root, root_key = x509_root
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert("someone-else", device_key, root, root_key)
    files = testpki.write_identity(tmp_path, "dev", [leaf], device_key)
    assert "CN does not match" in _refused(emulator, "ref-cn", None, files)


def test_expired_leaf(emulator, x509_root, tmp_path):
    root, root_key = x509_root
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert("ref-expired-leaf", device_key, root, root_key, days=1, start_days_ago=10)
    files = testpki.write_identity(tmp_path, "dev", [leaf], device_key)
    assert _refused(emulator, "ref-expired-leaf", None, files) == "certificate expired"


def test_individual_enrollment_takes_precedence_and_checks_the_thumbprint(emulator, x509_root, tmp_path):
    enrolled_key = testpki.generate_key()
    enrolled = testpki.make_self_signed_device_cert("ref-thumb", enrolled_key)
    emulator.admin.enroll_x509("ref-thumb", testpki.pem(enrolled))
    # a leaf from the verified group CA passes TLS, but the individual enrollment wins and differs
    root, root_key = x509_root
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert("ref-thumb", device_key, root, root_key)
    files = testpki.write_identity(tmp_path, "dev", [leaf], device_key)
    assert (
        _refused(emulator, "ref-thumb", None, files)
        == "certificate thumbprint does not match the individual enrollment"
    )


def test_certificate_from_unknown_ca_fails_tls_and_is_logged(emulator, tmp_path):
    key = testpki.generate_key()
    stranger = testpki.make_root_ca("stranger root", key)
    device_key = testpki.generate_key()
    leaf = testpki.make_device_cert("ref-stranger", device_key, stranger, key)
    files = testpki.write_identity(tmp_path, "dev", [leaf], device_key)
    before = emulator.admin.stats()["counters"].get("dps.tls_failures", 0)
    connack = None
    try:
        client = dps_client(emulator, files)
        client.send(mqtt.Connect("ref-stranger", dps_username(emulator, "ref-stranger")))
        connack = client.receive()  # TLS 1.3 reports the server's alert on the first read
        client.close()
    except (ConnectionError, OSError):
        pass
    assert connack is None
    deadline = time.monotonic() + 5
    while (
        emulator.admin.stats()["counters"].get("dps.tls_failures", 0) == before
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert emulator.admin.stats()["counters"]["dps.tls_failures"] == before + 1
    refused = [e for e in emulator.admin.events() if e["kind"] == "tls refused"]
    assert refused and "CERTIFICATE_VERIFY_FAILED" in refused[-1]["reason"]
