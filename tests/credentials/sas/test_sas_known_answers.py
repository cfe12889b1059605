"""Known answers from implementations that are not ours: OpenSSL's HMAC and Microsoft's
azure-iot-device SDK. The host, the firmware on CPython and the firmware on MicroPython must agree."""

import base64
import shutil
import subprocess
import time

import pytest
from azure.iot.device.common.auth.sastoken import RenewableSasToken
from azure.iot.device.common.auth.signing_mechanism import SymmetricKeySigningMechanism
from azure.iot.device.iothub.abstract_clients import _form_sas_uri as sdk_hub_uri
from azure.iot.device.provisioning.abstract_provisioning_device_client import _form_sas_uri as sdk_dps_uri
from hypothesis import given, settings
from hypothesis import strategies as st
from iotcprov.credentials import sas
from sas_rig import load_firmware_module

GROUP_KEY = base64.b64encode(bytes(range(1, 65))).decode()  # a 64-byte key, as IoT Central makes
DEVICE_KEY = base64.b64encode(bytes(range(100, 132))).decode()
EXPIRY = 1_900_000_000
firmware_sas = load_firmware_module("sas")


def openssl_hmac_b64(key_b64: str, message: str) -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no independent HMAC-SHA256 to compare against")
    done = subprocess.run(
        [
            openssl,
            "dgst",
            "-sha256",
            "-mac",
            "HMAC",
            "-macopt",
            f"hexkey:{base64.b64decode(key_b64).hex()}",
            "-binary",
        ],
        input=message.encode(),
        capture_output=True,
        check=True,
    )
    return base64.b64encode(done.stdout).decode()


def test_device_key_derivation_matches_openssl(run_micropython):
    expected = openssl_hmac_b64(GROUP_KEY, "dev-1")
    assert sas.derive_device_key(GROUP_KEY, "dev-1") == expected
    assert firmware_sas.b64encode(firmware_sas.hmac_sha256(base64.b64decode(GROUP_KEY), b"dev-1")) == expected
    on_board = run_micropython(
        "import binascii, json\nfrom iotc import sas\n"
        f"print(json.dumps(sas.b64encode(sas.hmac_sha256(binascii.a2b_base64({GROUP_KEY!r}), b'dev-1'))))"
    )
    assert on_board == expected


def test_token_signature_matches_openssl():
    resource = sas.hub_resource("iotc-test.azure-devices.net", "dev-1")
    signed = f"{sas.quote(resource)}\n{EXPIRY}"
    assert signed == f"iotc-test.azure-devices.net%2Fdevices%2Fdev-1\n{EXPIRY}"
    expected_sig = openssl_hmac_b64(DEVICE_KEY, signed)
    assert sas.sign_resource(DEVICE_KEY, sas.quote(resource), EXPIRY) == expected_sig
    token = sas.hub_token(DEVICE_KEY, "iotc-test.azure-devices.net", "dev-1", EXPIRY)
    assert token == (
        f"SharedAccessSignature sr=iotc-test.azure-devices.net%2Fdevices%2Fdev-1"
        f"&sig={sas.quote(expected_sig)}&se={EXPIRY}"
    )
    assert firmware_sas.hub_token(DEVICE_KEY, "iotc-test.azure-devices.net", "dev-1", EXPIRY) == token


def test_dps_token_carries_skn_registration():
    token = sas.dps_token(DEVICE_KEY, "0ne00ABCDEF", "dev-1", EXPIRY)
    assert token.startswith("SharedAccessSignature sr=0ne00ABCDEF%2Fregistrations%2Fdev-1&sig=")
    assert token.endswith(f"&se={EXPIRY}&skn=registration")
    assert firmware_sas.dps_token(DEVICE_KEY, "0ne00ABCDEF", "dev-1", EXPIRY) == token


def sdk_token(uri: str, key: str) -> RenewableSasToken:
    # The SDK takes its expiry from the clock; we read it back instead of patching the clock,
    # then build ours for that same expiry. Its signing code runs untouched.
    return RenewableSasToken(uri, SymmetricKeySigningMechanism(key), ttl=3600)


@settings(max_examples=40, deadline=None)
@given(
    raw_key=st.binary(min_size=16, max_size=64),
    device_id=st.from_regex(r"[A-Za-z0-9-]{1,128}", fullmatch=True),
)
def test_hub_token_equals_microsoft_sdk(raw_key, device_id):
    key = base64.b64encode(raw_key).decode()
    hub = "iotc-0f1e2d3c.azure-devices.net"
    theirs = sdk_token(sdk_hub_uri(hostname=hub, device_id=device_id), key)
    assert str(theirs) == sas.hub_token(key, hub, device_id, theirs.expiry_time)
    assert str(theirs) == firmware_sas.hub_token(key, hub, device_id, theirs.expiry_time)
    assert sas.hub_resource(hub, device_id) == sdk_hub_uri(hostname=hub, device_id=device_id)


def test_dps_token_equals_microsoft_sdk_apart_from_skn():
    # The SDK omits skn=registration on DPS tokens; both forms are accepted (docs/protocol.md section 3).
    theirs = sdk_token(sdk_dps_uri(id_scope="0ne00ABCDEF", registration_id="dev-1"), DEVICE_KEY)
    ours = sas.dps_token(DEVICE_KEY, "0ne00ABCDEF", "dev-1", theirs.expiry_time)
    assert ours == f"{theirs}&skn=registration"
    without_skn = sas.build_token(DEVICE_KEY, sas.dps_resource("0ne00ABCDEF", "dev-1"), theirs.expiry_time)
    assert without_skn == str(theirs)


def test_verify_accepts_sdk_token_and_rejects_tampering():
    hub, device_id = "iotc-0f1e2d3c.azure-devices.net", "dev-1"
    theirs = str(sdk_token(sdk_hub_uri(hostname=hub, device_id=device_id), DEVICE_KEY))
    parsed = sas.verify_token(theirs, DEVICE_KEY, sas.hub_resource(hub, device_id), now=time.time())
    assert parsed.resource == "iotc-0f1e2d3c.azure-devices.net/devices/dev-1" and parsed.policy is None
    other_key = base64.b64encode(bytes(32)).decode()
    with pytest.raises(sas.SasTokenError, match="signature") as caught:
        sas.verify_token(theirs, other_key, sas.hub_resource(hub, device_id), now=time.time())
    assert other_key not in str(caught.value) and DEVICE_KEY not in str(caught.value)
    with pytest.raises(sas.SasTokenError, match="expired"):
        sas.verify_token(theirs, DEVICE_KEY, sas.hub_resource(hub, device_id), now=parsed.expiry)
    with pytest.raises(sas.SasTokenError, match="resource"):
        sas.verify_token(theirs, DEVICE_KEY, sas.hub_resource(hub, "dev-2"), now=time.time())
    with pytest.raises(sas.SasTokenError, match="lacks se"):
        sas.parse_token(theirs.rsplit("&se=", 1)[0])


@pytest.mark.parametrize(
    "bad", ["", "not base64!", "QUJD", "AAAA" * 30, "AAAAAAAAAAAAAAAAAAAAA$==", "AAAAAAAAAAAAAAAAAAAAAB=="]
)
def test_firmware_refuses_bad_device_keys_without_echoing_them(bad):
    with pytest.raises(ValueError) as caught:
        firmware_sas.hub_token(bad, "h.azure-devices.net", "dev-1", EXPIRY)
    assert bad == "" or bad not in str(caught.value)
