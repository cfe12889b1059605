"""No key, token or password in the repr of anything that holds one: a repr ends up in tracebacks,
pytest's assertion output and debug prints."""

import base64
from pathlib import Path

from iotcprov.board.identity import SasCredential, X509Credential
from iotcprov.board.provision import WifiSettings
from iotcprov.credentials import keys, pki, pki_files, sas
from iotcprov.emulator import mqtt_codec
from iotcprov.factory.credentials import CaSource, GroupKeySource
from iotcprov.outputs import OutputFile

GROUP_KEY = base64.b64encode(bytes(range(32))).decode()
DEVICE_KEY = sas.derive_device_key(GROUP_KEY, "dev-1")
PASSWORD = "wifi-password-123"


def _pki_issuer(tmp_path: Path) -> pki_files.Issuer:
    pki_files.create_root(tmp_path, key_passphrase=None)
    return pki_files.load_issuer(tmp_path / "root.pem", tmp_path / "root.key.pem", None)


def _holders(tmp_path: Path) -> list[tuple[object, list[str]]]:
    """(object, the secret texts its repr must not contain)."""
    token = keys.issue_token(DEVICE_KEY, "dev-1", id_scope="0ne00ABCDEF")
    parsed = sas.parse_token(token.token)
    key_pem = pki.key_to_pem(pki.generate_key("ec"))
    issuer = _pki_issuer(tmp_path)
    leaf = CaSource(issuer).credential_for("dev-1")
    return [
        (keys.derive_device_keys(GROUP_KEY, ["dev-1"])[0], [DEVICE_KEY]),
        (token, [token.token, parsed.signature]),
        (parsed, [parsed.signature, sas.quote(parsed.signature)]),
        (OutputFile(tmp_path / "k.pem", key_pem, secret=True), [key_pem.decode().splitlines()[1]]),
        (mqtt_codec.Connect("dev-1", "scope/registrations/dev-1", token.token.encode()), [parsed.signature]),
        (SasCredential(DEVICE_KEY), [DEVICE_KEY]),
        (leaf, [base64.b64encode(leaf.key_der).decode()[:40], repr(leaf.key_der)[:40]]),
        (WifiSettings("lab", PASSWORD), [PASSWORD]),
        (GroupKeySource(GROUP_KEY), [GROUP_KEY]),
        (issuer, [pki.key_to_pem(issuer.key).decode().splitlines()[1]]),
        (CaSource(issuer), [pki.key_to_pem(issuer.key).decode().splitlines()[1]]),
    ]


def test_no_secret_in_a_repr(tmp_path):
    holders = _holders(tmp_path)
    for holder, secrets in holders:
        shown = repr(holder)
        for secret in secrets:
            assert secret not in shown, f"{type(holder).__name__} shows a secret: {shown[:200]}"
    assert {type(holder) for holder, _ in holders} >= {
        keys.DeviceKey, keys.IssuedToken, sas.SasToken, OutputFile, mqtt_codec.Connect, X509Credential,
    }


def test_the_other_fields_still_show(tmp_path):
    assert repr(keys.DeviceKey("dev-1", DEVICE_KEY)) == "DeviceKey(device_id='dev-1')"
    shown = repr(OutputFile(tmp_path / "k.pem", b"secret", secret=True))
    assert "k.pem" in shown and "secret=True" in shown and "b'secret'" not in shown
