"""The emulator's IoT Central API against the reference's documented shapes (api-version
2022-07-31), on its sans-I/O core; and, through the CLI against a running emulator, the errors a
user meets: each one line."""

from __future__ import annotations

import base64
import json
import time

import pytest
from iotcprov.credentials import pki
from iotcprov.credentials.sas import derive_device_key
from iotcprov.emulator.central_api import CentralApi
from iotcprov.emulator.control import Control
from iotcprov.emulator.hub import HubRegistry
from iotcprov.emulator.session import Config, Context
from iotcprov.emulator.store import Store

from tests.board.conftest import run_cli
from tests.central.conftest import central_cli

VERSION = {"api-version": "2022-07-31"}


class Api:
    def __init__(self, folder, clock=time.time, rate_per_second=None) -> None:
        self.store = Store(folder)
        self.control = Control(Context(self.store, Config()), HubRegistry(), {}, lambda pem: None)
        self.api = CentralApi(self.control, now=clock, rate_per_second=rate_per_second)
        self.token = self.control.create_api_token("tests")["token"]

    def __call__(self, method, path, body=None, query=None, token=None):
        reply = self.api.handle(
            method, path, VERSION if query is None else query, {"Authorization": token or self.token},
            json.dumps(body).encode() if body is not None else b"", "https://localhost:4443/api",
        )  # fmt: skip
        return reply.status, reply.body, reply.headers


@pytest.fixture
def api(tmp_path):
    api = Api(tmp_path / "emulator")
    yield api
    api.store.close()


def _error(reply, status: int, code: str) -> str:
    got, body, headers = reply
    assert got == status and headers["x-ms-error-code"] == code
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "requestId", "time"}
    assert body["error"]["code"] == code and body["error"]["time"].endswith("GMT")
    return body["error"]["message"]


def test_api_version_is_required(api):
    _error(api("GET", "/devices", query={}), 400, "MissingApiVersionParameter")
    _error(api("GET", "/devices", query={"api-version": "1.0"}), 400, "InvalidApiVersionParameter")


def test_tokens(api):
    _error(
        api("GET", "/devices", token="SharedAccessSignature sr=x&sig=y&skn=tests&se=1"),
        401,
        "Unauthenticated",
    )
    _error(api("GET", "/devices", token="Bearer eyJ0eX"), 401, "Unauthenticated")
    token = api.control.create_api_token("short", days=1)["token"]
    api.api.now = lambda: time.time() + 2 * 86400
    assert "expired" in _error(api("GET", "/devices", token=token), 401, "Unauthenticated")
    assert token.startswith("SharedAccessSignature sr=") and "&skn=short&se=" in token
    assert token not in json.dumps(api.store.api_token("short"))  # only a hash is kept


def test_device_shapes(api):
    status, device, _ = api("PUT", "/devices/dev1", {"displayName": "Thermo 1", "enabled": True,
                                                      "template": "dtmi:iotcprov:Thermostat;1"})  # fmt: skip
    assert status == 200
    assert device == {
        "id": "dev1", "displayName": "Thermo 1", "template": "dtmi:iotcprov:Thermostat;1",
        "enabled": True, "provisioned": False, "simulated": False, "etag": device["etag"],
    }  # fmt: skip
    assert api("GET", "/devices/dev1")[1] == device
    _error(api("PATCH", "/devices/dev1", {"enabled": False, "etag": '"stale"'}), 412, "PreconditionFailed")
    assert api("PATCH", "/devices/dev1", {"enabled": False})[1]["enabled"] is False
    _error(api("GET", "/devices/nope"), 404, "NotFound")
    _error(api("PUT", "/devices/bad_id", {}), 400, "BadRequest")
    _error(api("PUT", "/devices/sim", {"simulated": True}), 422, "UnprocessableEntity")
    assert api("DELETE", "/devices/dev1")[:2] == (204, None)
    _error(api("GET", "/devices/dev1"), 404, "NotFound")


def test_credentials_come_from_the_default_sas_group(api):
    api("PUT", "/devices/dev1", {})
    status, credentials, _ = api("GET", "/devices/dev1/credentials")
    group = api.store.group("SAS-IoT-Devices")
    assert status == 200 and credentials == {
        "idScope": api.store.id_scope(),
        "symmetricKey": {
            "primaryKey": derive_device_key(group["primary_key"], "dev1"),
            "secondaryKey": derive_device_key(group["secondary_key"], "dev1"),
        },
    }


def test_attestation_shapes(api):
    api("PUT", "/devices/dev1", {})
    one_key = {"type": "symmetricKey", "symmetricKey": {"primaryKey": "x"}}
    _error(api("PUT", "/devices/dev1/attestation", one_key), 422, "UnprocessableEntity")
    tpm = {"type": "tpm", "tpm": {"endorsementKey": "e"}}
    assert "no TPM" in _error(api("PUT", "/devices/dev1/attestation", tpm), 422, "UnprocessableEntity")
    leaf = pki.make_self_signed_device_cert("dev1", pki.generate_key("ec"))
    body = {"type": "x509", "x509": {"clientCertificates": {"primary": {
        "certificate": base64.b64encode(pki.cert_to_pem(leaf)).decode()}}}}  # fmt: skip
    status, answer, _ = api("PUT", "/devices/dev1/attestation", body)
    assert status == 200 and answer == {"type": "x509", "x509": {"clientCertificates": {"primary": {
        "info": {"sha1Thumbprint": pki.thumbprint_sha1(leaf)}}}}}  # fmt: skip
    assert api("GET", "/devices/dev1/credentials")[1]["x509"] == answer["x509"]
    key = base64.b64encode(bytes(32)).decode()
    body = {"type": "symmetricKey", "symmetricKey": {"primaryKey": key, "secondaryKey": key}}
    assert api("PUT", "/devices/dev1/attestation", body)[1] == body  # replaced
    assert api("GET", "/devices/dev1/credentials")[1]["symmetricKey"] == body["symmetricKey"]


def test_groups_and_proof_of_possession(api):
    body = {
        "displayName": "My group",
        "enabled": True,
        "type": "iot",
        "attestation": {"type": "symmetricKey"},
    }
    status, group, _ = api("PUT", "/enrollmentGroups/sas-group", body)
    keys = group["attestation"]["symmetricKey"]
    assert status == 200 and len(base64.b64decode(keys["primaryKey"])) == 64 and keys["secondaryKey"]
    assert {"id", "displayName", "enabled", "type", "attestation", "etag"} == set(group)

    body["attestation"] = {"type": "x509"}
    status, group, _ = api("PUT", "/enrollmentGroups/x509-group", body)
    assert group["attestation"] == {"type": "x509", "x509": {"signingCertificates": {}}}
    _error(api("PUT", "/enrollmentGroups/x509-group", {**body, "attestation": {"type": "symmetricKey"}}),
           422, "UnprocessableEntity")  # fmt: skip
    _error(api("PUT", "/enrollmentGroups/x", {"type": "iot", "attestation": {"type": "x509"}}),
           422, "UnprocessableEntity")  # fmt: skip

    ca_key = pki.generate_key("ec")
    ca = pki.make_root_ca("group CA", ca_key)
    base = "/enrollmentGroups/x509-group/certificates/primary"
    status, cert, _ = api("PUT", base, {"certificate": base64.b64encode(pki.cert_to_pem(ca)).decode()})
    assert status == 200 and set(cert) == {"verified", "info", "etag"}
    assert cert["verified"] is False and cert["info"] == {"sha1Thumbprint": pki.thumbprint_sha1(ca)}
    status, answer, _ = api("POST", base + "/generateVerificationCode")
    code = answer["verificationCode"]
    wrong = pki.make_verification_cert("not-the-code", ca, ca_key)
    _error(api("POST", base + "/verify", {"certificate": base64.b64encode(pki.cert_to_pem(wrong)).decode()}),
           422, "UnprocessableEntity")  # fmt: skip
    proof = pki.make_verification_cert(code, ca, ca_key)
    status, nothing, _ = api(
        "POST", base + "/verify", {"certificate": base64.b64encode(pki.cert_to_pem(proof)).decode()}
    )
    assert (status, nothing) == (204, None)
    assert api("GET", base)[1]["verified"] is True
    primary = api("GET", "/enrollmentGroups/x509-group")[1]["attestation"]["x509"]["signingCertificates"][
        "primary"
    ]
    assert primary["verified"] is True
    assert api.store.groups("x509")[0]["verified"] == 1  # the group DPS authenticates devices against
    _error(api("PUT", "/enrollmentGroups/x509-group/certificates/secondary", {"certificate": "x"}),
           422, "UnprocessableEntity")  # fmt: skip

    ids = [g["id"] for g in api("GET", "/enrollmentGroups")[1]["value"]]
    assert ids == ["sas-group", "x509-group", "SAS-IoT-Devices"]
    assert api("DELETE", "/enrollmentGroups/sas-group")[0] == 204


def test_lists_are_paged_with_next_link(api):
    for n in range(30):
        api("PUT", f"/devices/dev-{n:02d}", {})
    status, first, _ = api("GET", "/devices")
    assert status == 200 and len(first["value"]) == 25
    assert first["nextLink"] == "https://localhost:4443/api/devices?api-version=2022-07-31&%24skiptoken=25"
    second = api("GET", "/devices", query={**VERSION, "$skiptoken": "25"})[1]
    assert len(second["value"]) == 5 and "nextLink" not in second


def test_templates_and_telemetry(api):
    templates = api("GET", "/deviceTemplates")[1]["value"]
    assert [t["@id"] for t in templates] == ["dtmi:iotcprov:Thermostat;1"]
    assert templates[0]["@type"] == ["ModelDefinition", "DeviceModel"] and templates[0]["capabilityModel"]
    api("PUT", "/devices/dev1", {})
    assert api("GET", "/devices/dev1/telemetry/temperature")[:2] == (200, {})
    api.store.add_telemetry("dev1", b'{"temperature": 21.5}', {}, 1620165579.153)
    answer = api("GET", "/devices/dev1/telemetry/temperature")[1]
    assert answer == {"value": 21.5, "timestamp": "2021-05-04T21:59:39.153Z"}


def test_more_than_20_requests_a_second_are_throttled(tmp_path):
    api = Api(tmp_path / "emulator", clock=lambda: 1000.0, rate_per_second=20)
    assert all(api("GET", "/devices")[0] == 200 for _ in range(20))
    _error(api("GET", "/devices"), 429, "TooManyRequests")
    assert api("GET", "/devices")[2]["Retry-After"] == "1"


# ---------------------------------------------------------------- through the CLI: one line each


@pytest.mark.smoke  # the API as an aiohttp sub-application, over HTTPS, at the dependency floors
def test_cli_errors_are_one_line(central, tmp_path):
    out = central_cli(central, "devices", "show", "--device-id", "missing-1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "device 'missing-1' does not exist" in out.stderr

    bad = tmp_path / "bad.token"
    token = central.token_file.read_text()
    bad.write_text(token.replace("sig=", "sig=A"))
    info = central.info
    out = run_cli("central", "devices", "list", "--app-url", info["central_url"], "--trust", info["ca_cert"],
                  "--token-file", str(bad))  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "token was refused" in out.stderr
    assert "sig=" not in out.stderr

    out = run_cli("central", "devices", "list", "--app-url", info["central_url"], "--token-file", str(bad))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "give --trust" in out.stderr


def test_a_blocked_device_is_refused_by_the_hub(api):
    from iotcprov.credentials.sas import hub_token
    from iotcprov.emulator.auth import Refusal, authenticate_hub

    key = base64.b64encode(bytes(32)).decode()
    api("PUT", "/devices/dev1", {})
    keys = {"primaryKey": key, "secondaryKey": key}
    api("PUT", "/devices/dev1/attestation", {"type": "symmetricKey", "symmetricKey": keys})
    registration = {"enrollment_kind": "individual", "enrollment_name": "dev1", "attestation": "sas",
                    "assigned_hub": "localhost", "status": "assigned"}  # fmt: skip
    api.store.record_registration("dev1", registration, time.time())
    token = hub_token(key, "localhost", "dev1", int(time.time()) + 600)

    def connect():
        return authenticate_hub(api.store, "localhost", "dev1", "localhost/dev1/?api-version=2021-04-12",
                                token.encode(), None, time.time())  # fmt: skip

    assert connect().device_id == "dev1"
    api("PATCH", "/devices/dev1", {"enabled": False})
    with pytest.raises(Refusal, match="blocked in the IoT Central application"):
        connect()


def test_automatic_approval_is_an_emulator_setting(central):
    data = str(central.data_dir)
    out = run_cli("emulator", "--data", data, "settings", "--auto-approve", "off")
    assert out.returncode == 0 and json.loads(out.stdout) == {"auto_approve": False}
    out = run_cli("emulator", "--data", data, "settings")
    assert json.loads(out.stdout) == {"auto_approve": False}
