"""The pure identity builder, trust roots and credential input: what a board would receive."""

import base64
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from iotcprov.board import credential_input
from iotcprov.board.identity import (
    IdentityRequest,
    SasCredential,
    WifiSettings,
    X509Credential,
    build_identity,
    identity_tree,
    parse_dps_host,
)
from iotcprov.board.trust import AZURE_ROOT_NAMES, azure_roots, roots_from_file
from iotcprov.credentials import pki
from iotcprov.credentials.sas import derive_device_key
from iotcprov.errors import InputError

from tests.board.conftest import GROUP_KEY, ID_SCOPE

ROOT = (b"\x30\x82fake-root",)


def sas_request(**changes) -> IdentityRequest:
    fields = dict(
        id_scope=ID_SCOPE,
        device_id="dev-1",
        credential=credential_input.sas_from_group_key(GROUP_KEY, "dev-1"),
        trust=ROOT,
    )
    fields.update(changes)
    return IdentityRequest(**fields)


def test_sas_identity_holds_the_derived_key_and_never_the_group_key():
    bundle = build_identity(sas_request())
    device_key = derive_device_key(GROUP_KEY, "dev-1")
    assert bundle.files["device.key"] == device_key.encode()
    everything = b"".join(bundle.files.values())
    assert GROUP_KEY.encode() not in everything
    assert base64.b64decode(GROUP_KEY) not in everything
    settings = json.loads(bundle.files["identity.json"])
    assert settings == bundle.settings
    assert settings["auth"] == "sas" and settings["key"] == "device.key" and settings["format"] == 1
    assert settings["trust"] == ["root-0.der"] and bundle.files["root-0.der"] == ROOT[0]
    expected = "sha256:" + hashlib.sha256(base64.b64decode(device_key)).hexdigest()[:16]
    assert settings["fingerprint"] == bundle.fingerprint == expected
    assert device_key not in bundle.files["identity.json"].decode() and device_key not in repr(bundle)


def test_folder_is_named_by_content():
    first, again = build_identity(sas_request()), build_identity(sas_request())
    other = build_identity(sas_request(model_id="dtmi:com:example:Thermostat;1"))
    assert first.folder == again.folder and first.folder.startswith("id-") and len(first.folder) == 11
    assert other.folder != first.folder


def test_endpoint_and_options_reach_identity_json():
    host, port = parse_dps_host("127.0.0.5:18883")
    bundle = build_identity(
        sas_request(dps_host=host, dps_port=port, hub_port=28883, options={"telemetry_interval": 2})
    )
    settings = json.loads(bundle.files["identity.json"])
    assert (settings["dps_host"], settings["dps_port"], settings["hub_port"]) == ("127.0.0.5", 18883, 28883)
    assert settings["options"] == {"telemetry_interval": 2}
    assert parse_dps_host("global.azure-devices-provisioning.net") == (
        "global.azure-devices-provisioning.net",
        8883,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id_scope": "scope"}, "--id-scope"),
        ({"device_id": "bad id"}, "--device-id"),
        ({"dps_host": "a b"}, "--dps-host"),
        ({"hub_port": 70000}, "--hub-port"),
        ({"model_id": "thermostat"}, "--model-id"),
        ({"trust": ()}, "--trust"),
        ({"credential": SasCredential("not base64!")}, "--device-key"),
    ],
)
def test_bad_input_names_the_field(changes, field):
    with pytest.raises(InputError, match=f"^{field}"):
        build_identity(sas_request(**changes))


def test_identity_tree_makes_the_folder_active():
    bundle = build_identity(sas_request())
    tree = identity_tree(bundle, WifiSettings("net", "pw"))
    folder = tree["/iotc-data/active"].decode().strip()
    assert folder == bundle.with_wifi(WifiSettings("net", "pw").file()).folder != bundle.folder
    assert tree[f"/iotc-data/{folder}/identity.json"] == bundle.files["identity.json"]
    assert json.loads(tree[f"/iotc-data/{folder}/wifi.json"]) == {"ssid": "net", "password": "pw"}
    assert "/iotc-data/wifi.json" not in tree
    assert identity_tree(bundle)["/iotc-data/active"] == (bundle.folder + "\n").encode()


def test_azure_roots_are_the_two_by_subject_name():
    roots = azure_roots()
    names = [
        x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        for der in roots
    ]
    assert names == list(AZURE_ROOT_NAMES)


def test_trust_file_pem_bundle_and_der(tmp_path):
    key = pki.generate_key()
    ca = pki.make_root_ca("Test Root", key)
    pem, der = tmp_path / "ca.pem", tmp_path / "ca.der"
    pem.write_bytes(pki.cert_to_pem(ca) * 2)
    der.write_bytes(pki.cert_to_der(ca))
    assert roots_from_file(pem) == (pki.cert_to_der(ca),) * 2
    assert roots_from_file(der) == (pki.cert_to_der(ca),)
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(InputError, match="^--trust: .* no PEM or DER certificate"):
        roots_from_file(tmp_path / "junk")


def _x509_files(tmp_path, matching=True):
    ca_key = pki.generate_key()
    ca = pki.make_root_ca("Test Root", ca_key)
    leaf_key = pki.generate_key()
    leaf = pki.make_device_cert("dev-x", leaf_key, ca, ca_key)
    cert, key = tmp_path / "dev.pem", tmp_path / "dev.key"
    cert.write_bytes(pki.cert_to_pem(leaf))
    key.write_bytes(pki.key_to_pem(leaf_key if matching else pki.generate_key()))
    return leaf, leaf_key, ca, cert, key


def test_x509_identity_is_der_without_a_chain(tmp_path):
    leaf, leaf_key, ca, cert, key = _x509_files(tmp_path)
    credential = credential_input.x509_from_files(cert, key)
    bundle = build_identity(sas_request(device_id="dev-x", credential=credential))
    assert bundle.files["cert.der"] == pki.cert_to_der(leaf)
    assert bundle.files["key.der"] == pki.key_to_traditional_der(leaf_key)
    assert bundle.settings["cert"] == "cert.der" and bundle.settings["key"] == "key.der"
    assert bundle.fingerprint == pki.thumbprint_sha256(leaf)


def test_x509_with_chain_is_pem(tmp_path):
    leaf, _leaf_key, ca, cert, key = _x509_files(tmp_path)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.cert_to_pem(ca))
    credential = credential_input.x509_from_files(cert, key, chain)
    bundle = build_identity(sas_request(device_id="dev-x", credential=credential))
    assert [c.subject for c in x509.load_pem_x509_certificates(bundle.files["cert.pem"])] == [
        leaf.subject,
        ca.subject,
    ]
    assert bundle.files["key.pem"].startswith(b"-----BEGIN PRIVATE KEY-----")
    assert isinstance(credential, X509Credential) and "key=<hidden>" in repr(credential)


def test_mismatched_certificate_and_key_is_refused(tmp_path):
    *_, cert, key = _x509_files(tmp_path, matching=False)
    with pytest.raises(InputError, match="^--key: .* is not the private key of the certificate"):
        credential_input.x509_from_files(cert, key)
