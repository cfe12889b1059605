"""iotcprov.credentials.keys: the services behind `iotcprov keys`, called from Python."""

import base64

import pytest
from iotcprov.credentials import keys, sas
from iotcprov.errors import InputError

GROUP_KEY = base64.b64encode(bytes(range(64))).decode()
NOW = 1_800_000_000


def test_derive_checks_every_id_before_deriving_any():
    with pytest.raises(InputError, match="--device-id: character '!' at position 2"):
        keys.derive_device_keys(GROUP_KEY, ["dev-1", "d!"])
    derived = keys.derive_device_keys(f"{GROUP_KEY}\n", ["dev-1", "dev-2"])
    assert [d.device_key for d in derived] == [
        sas.derive_device_key(GROUP_KEY, i) for i in ("dev-1", "dev-2")
    ]
    assert keys.derive_device_key(GROUP_KEY, "dev-1") == derived[0].device_key


def test_generated_keys_are_valid_and_distinct():
    generated = {keys.generate_key(32) for _ in range(20)}
    assert len(generated) == 20
    assert all(len(base64.b64decode(k, validate=True)) == 32 for k in generated)


def test_issue_token_expiry_from_ttl_or_absolute():
    ttl_token = keys.issue_token(GROUP_KEY, "dev-1", hub_host="h.example.net", ttl=60, now=NOW)
    assert ttl_token.expiry == NOW + 60 and ttl_token.resource == "h.example.net/devices/dev-1"
    assert ttl_token.token == sas.hub_token(GROUP_KEY, "h.example.net", "dev-1", NOW + 60)
    default = keys.issue_token(GROUP_KEY, "dev-1", id_scope="0ne00ABCDEF", now=NOW)
    assert default.expiry == NOW + keys.DEFAULT_TTL
    assert default.token == sas.dps_token(GROUP_KEY, "0ne00ABCDEF", "dev-1", NOW + keys.DEFAULT_TTL)
    absolute = keys.issue_token(GROUP_KEY, "dev-1", id_scope="0ne00ABCDEF", expiry=NOW + 5, now=NOW)
    assert absolute.expiry == NOW + 5


def test_issue_token_key_field_names_the_source():
    with pytest.raises(InputError, match="^IOTCPROV_DEVICE_KEY: not valid base64"):
        keys.issue_token(
            "not a key", "dev-1", hub_host="h.example.net", now=NOW, key_field="IOTCPROV_DEVICE_KEY"
        )
