"""The client's requests pinned to IoT Central's reference (api-version 2022-07-31): paths, query,
headers and bodies as the documented examples have them, checked on a recording stub; and the
errors: bad tokens, unknown apps, missing devices and throttling each give one clear line."""

from __future__ import annotations

import base64

import pytest
from iotcprov.central import service
from iotcprov.central.auth import ApiToken, resolve_auth
from iotcprov.central.client import API_VERSION, App, CentralClient
from iotcprov.credentials import pki, pki_files
from iotcprov.errors import InputError, OperationError

from tests.central.stub import start_stub

TOKEN = (
    "SharedAccessSignature sr=e8a0b7f2&sig=jKY8WdGk0Wg%2FmS4ms2X8LrwBSx0%3D"
    "&skn=operator-token&se=1647950487889"
)
ERROR_401 = {
    "error": {
        "code": "Unauthenticated",
        "message": "The provided authentication token is invalid. Request ID: 129yztvc, "
        "Time: Tue, 25 Apr 2023 11:24:53 GMT.",
        "requestId": "129yztvc",
        "time": "Tue, 25 Apr 2023 11:24:53 GMT",
    }
}


@pytest.fixture
def stub(tmp_path):
    stub, server = start_stub(tmp_path)
    yield stub
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(stub):
    delays: list[float] = []
    client = CentralClient(
        App.parse(stub.url, "--app-url", stub.ca_file), ApiToken(TOKEN), sleep=delays.append
    )
    client.delays = delays
    return client


def _one(stub, method: str, path: str):
    (request,) = stub.requests
    assert (request.method, request.path) == (method, f"/api{path}")
    assert request.query["api-version"] == API_VERSION
    assert request.headers["Authorization"] == TOKEN  # as issued: no prefix added
    return request


# ---------------------------------------------------------------- requests and bodies


def test_app_subdomain_and_url():
    assert App.parse("myapp").base_url == "https://myapp.azureiotcentral.com"
    assert App.parse("https://myapp.azureiotcentral.com/").base_url == "https://myapp.azureiotcentral.com"
    assert App.parse("https://localhost:4443").base_url == "https://localhost:4443"
    for bad in ("my.app", "http://myapp.azureiotcentral.com", "https://x/other", ""):
        with pytest.raises(InputError):
            App.parse(bad)


def test_create_device_sends_the_documented_body(stub, client):
    stub.answer(200, {"id": "dev1", "displayName": "Thermo 1", "template": "dtmi:contoso:Thermostat;1",
                      "simulated": False, "enabled": True, "provisioned": False, "etag": "eyJ"})  # fmt: skip
    device = service.create_device(client, "dev1", "Thermo 1", "dtmi:contoso:Thermostat;1")
    request = _one(stub, "PUT", "/devices/dev1")
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {
        "displayName": "Thermo 1", "template": "dtmi:contoso:Thermostat;1", "simulated": False,
        "enabled": True,
    }  # fmt: skip
    assert device["provisioned"] is False


def test_credentials_and_approval(stub, client):
    stub.answer(
        200, {"idScope": "0ne003E64EF", "symmetricKey": {"primaryKey": "XUQv", "secondaryKey": "Qp/M"}}
    )
    assert service.credentials(client, "dev1")["idScope"] == "0ne003E64EF"
    _one(stub, "GET", "/devices/dev1/credentials")
    stub.requests.clear()
    stub.answer(200, {"id": "dev1", "enabled": True, "provisioned": False})
    service.set_enabled(client, "dev1", True)
    assert _one(stub, "PATCH", "/devices/dev1").body == {"enabled": True}


def test_lists_follow_next_link_as_given(stub, client):
    next_link = f"{stub.url}/api/devices?api-version={API_VERSION}&$skiptoken=abc"
    stub.answer(200, {"value": [{"id": "a"}], "nextLink": next_link}).answer(200, {"value": [{"id": "b"}]})
    assert [d["id"] for d in service.list_devices(client)] == ["a", "b"]
    assert [r.query.get("$skiptoken") for r in stub.requests] == [None, "abc"]


def test_next_link_to_another_host_is_not_followed(stub, client):
    stub.answer(200, {"value": [], "nextLink": "https://elsewhere.example/api/devices?api-version=x"})
    with pytest.raises(OperationError, match="another host"):
        service.list_devices(client)


def test_individual_enrollments(stub, client):
    key = base64.b64encode(bytes(32)).decode()
    stub.answer(200, {"type": "symmetricKey", "symmetricKey": {"primaryKey": key, "secondaryKey": key}})
    service.enroll_sas(client, "dev1", key, key)
    assert _one(stub, "PUT", "/devices/dev1/attestation").body == {
        "type": "symmetricKey", "symmetricKey": {"primaryKey": key, "secondaryKey": key}
    }  # fmt: skip
    stub.requests.clear()
    leaf_key = pki.generate_key("ec")
    leaf = pki.make_self_signed_device_cert("dev1", leaf_key)
    stub.answer(
        200, {"type": "x509", "x509": {"clientCertificates": {"primary": {"info": {"sha1Thumbprint": "X"}}}}}
    )
    service.enroll_x509(client, "dev1", leaf)
    body = _one(stub, "PUT", "/devices/dev1/attestation").body
    certificate = body["x509"]["clientCertificates"]["primary"]["certificate"]
    assert base64.b64decode(certificate) == pki.cert_to_pem(leaf)  # base64 of the whole PEM text


def test_group_create_and_proof_of_possession(stub, client, tmp_path):
    pki_files.create_root(tmp_path, key_passphrase=None)
    issuer = pki_files.load_issuer(tmp_path / "root.pem", tmp_path / "root.key.pem", None)
    thumb = pki.thumbprint_sha1(issuer.cert)
    group = {"id": "boards", "displayName": "boards", "type": "iot", "enabled": True, "etag": "e"}
    stub.answer(200, {**group, "attestation": {"type": "x509", "x509": {"signingCertificates": {}}}})
    stub.answer(200, {"verified": False, "info": {"sha1Thumbprint": thumb}, "etag": "c"})
    stub.answer(200, {"id": "boards", "attestation": {"type": "x509"}})
    service.create_group(client, "boards", None, True, issuer.cert)
    put_group, put_cert, _get = stub.requests
    assert (put_group.method, put_group.path) == ("PUT", "/api/enrollmentGroups/boards")
    assert put_group.body == {
        "displayName": "boards",
        "enabled": True,
        "type": "iot",
        "attestation": {"type": "x509"},
    }
    assert (put_cert.method, put_cert.path) == ("PUT", "/api/enrollmentGroups/boards/certificates/primary")
    assert base64.b64decode(put_cert.body["certificate"]) == pki.cert_to_pem(issuer.cert)

    stub.requests.clear()
    stub.answer(200, {"verified": False, "info": {"sha1Thumbprint": thumb}, "etag": "c"})
    stub.answer(200, {"verificationCode": "ABC123"})
    stub.answer(204)
    stub.answer(200, {"verified": True, "info": {"sha1Thumbprint": thumb}, "etag": "d"})
    result = service.verify_group(client, "boards", issuer)
    assert result.verified and not result.uploaded
    paths = [
        (r.method, r.path.removeprefix("/api/enrollmentGroups/boards/certificates/primary"))
        for r in stub.requests
    ]
    assert paths == [("GET", ""), ("POST", "/generateVerificationCode"), ("POST", "/verify"), ("GET", "")]
    assert stub.requests[1].body is None  # no body
    proof = pki.load_certificate(base64.b64decode(stub.requests[2].body["certificate"]))
    assert pki.common_name(proof) == "ABC123" and pki.issued_by(proof, issuer.cert)


def test_status_reads_the_template_and_last_telemetry(stub, client):
    stub.answer(
        200, {"id": "dev1", "enabled": True, "provisioned": True, "template": "dtmi:contoso:Thermostat;1"}
    )
    stub.answer(200, {"@id": "dtmi:contoso:Thermostat;1", "capabilityModel": {"contents": [
        {"@type": "Telemetry", "name": "temp"}, {"@type": ["Telemetry", "Temperature"], "name": "inside"},
        {"@type": "Property", "name": "target"}]}})  # fmt: skip
    stub.answer(200, {"value": 32, "timestamp": "2021-05-04T21:59:39.153Z"})
    stub.answer(404, {"error": {"code": "NotFound", "message": "no value"}})
    report = service.status(client, "dev1")
    assert report["status"] == "provisioned"
    assert report["telemetry"] == {
        "temp": {"value": 32, "timestamp": "2021-05-04T21:59:39.153Z"},
        "inside": None,
    }
    assert [r.path for r in stub.requests][2:] == [
        "/api/devices/dev1/telemetry/temp",
        "/api/devices/dev1/telemetry/inside",
    ]


def test_device_states():
    assert service.state_of({"enabled": False, "provisioned": False}) == "waiting for approval (or blocked)"
    assert service.state_of({"enabled": False, "provisioned": True}) == "blocked"
    assert service.state_of({"enabled": True, "provisioned": False}).startswith("registered")
    assert service.state_of({"enabled": True, "provisioned": True}) == "provisioned"


# ---------------------------------------------------------------- errors: one clear line each


def _line(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text and "sig=" not in text and "jKY8W" not in text
    return text


def test_a_bad_token_says_to_make_a_new_one(stub, client):
    stub.answer(401, ERROR_401, {"x-ms-error-code": "Unauthenticated"})
    with pytest.raises(InputError) as raised:
        service.get_device(client, "dev1")
    text = _line(raised.value)
    assert "token was refused" in text and "IOTCPROV_CENTRAL_TOKEN" in text and "Request ID" not in text


def test_a_missing_device_names_it(stub, client):
    stub.answer(404, {"error": {"code": "NotFound", "message": "Device not found."}})
    with pytest.raises(InputError) as raised:
        service.get_device(client, "dev-404")
    assert "device 'dev-404' does not exist" in _line(raised.value)


def test_throttling_is_retried_honouring_retry_after(stub, client):
    stub.answer(429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "3"})
    stub.answer(503, None).answer(200, {"id": "dev1"})
    assert service.get_device(client, "dev1")["id"] == "dev1"
    assert client.delays == [3.0, 2.0]  # Retry-After, then backoff (second attempt)


def test_throttling_that_does_not_end_is_one_line(stub, client):
    for _ in range(client.attempts):
        stub.answer(429, {"error": {"code": "TooManyRequests", "message": "slow down"}})
    with pytest.raises(OperationError) as raised:
        service.list_devices(client)
    assert "still throttled after 5 tries" in _line(raised.value)
    assert len(stub.requests) == 5 and client.delays == [1.0, 2.0, 4.0, 8.0]


def test_forbidden_and_validation_errors(stub, client):
    stub.answer(403, {"error": {"code": "Forbidden", "message": "no access"}})
    with pytest.raises(InputError, match="role may not DELETE"):
        service.delete_device(client, "dev1")
    stub.answer(422, {"error": {"code": "InvalidBody", "message": "symmetricKey needs both"}})
    with pytest.raises(InputError, match=r"refused \(422 \(InvalidBody: symmetricKey needs both\)\)"):
        service.enroll_sas(
            client, "dev1", base64.b64encode(bytes(32)).decode(), base64.b64encode(bytes(32)).decode()
        )


def test_an_unknown_app_is_one_line():
    client = CentralClient(App("https://no-such-app.invalid"), ApiToken(TOKEN))
    with pytest.raises(InputError) as raised:
        service.list_devices(client)
    assert "no such host; check --app" in _line(raised.value)


def test_an_untrusted_certificate_says_to_give_trust(stub):
    client = CentralClient(App.parse(stub.url), ApiToken(TOKEN))
    with pytest.raises(OperationError) as raised:
        service.list_devices(client)
    assert "give --trust" in _line(raised.value)


def test_token_sources(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert resolve_auth(str(token_file), False, {}).header() == TOKEN
    assert resolve_auth(None, False, {"IOTCPROV_CENTRAL_TOKEN": TOKEN}).header() == TOKEN
    assert TOKEN not in repr(resolve_auth(str(token_file), False, {}))
    with pytest.raises(InputError, match="no IoT Central credential"):
        resolve_auth(None, False, {})
    with pytest.raises(InputError, match="not both"):
        resolve_auth(str(token_file), True, {})
    token_file.write_text("jKY8WdGk0Wg")
    with pytest.raises(InputError) as raised:
        resolve_auth(str(token_file), False, {})
    assert "not an IoT Central API token" in _line(raised.value)


def test_entra_bearer_tokens(monkeypatch):
    from types import SimpleNamespace

    from iotcprov.central.auth import ENTRA_SCOPE, EntraToken

    asked = []

    class Credential:
        def get_token(self, scope):
            asked.append(scope)
            return SimpleNamespace(token="eyJ0eX", expires_on=10**10)

    entra = EntraToken(Credential())
    assert entra.header() == "Bearer eyJ0eX" and entra.header() == "Bearer eyJ0eX"
    assert asked == [ENTRA_SCOPE] == ["https://apps.azureiotcentral.com/.default"]  # renewed only near expiry
    assert "eyJ0eX" not in repr(entra)

    monkeypatch.setitem(__import__("sys").modules, "azure.identity", None)  # not installed
    with pytest.raises(InputError, match=r"pip install 'iotcprov\[entra\]'"):
        EntraToken().header()
