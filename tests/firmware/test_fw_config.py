"""Identity, options, Wi-Fi and assignment-cache validation (firmware/iotc/config.py) on CPython."""

import pytest
from iotc import ConfigError
from iotc.config import cached_assignment, valid_registration_id
from iotc.config import identity as Identity
from iotc.config import options as Options
from iotc.config import wifi as parse_wifi
from iotc.dps import assignment_doc


def identity_doc(**changes):
    doc = {
        "format": 1,
        "id_scope": "0ne00ABCDEF",
        "device_id": "dev-1",
        "auth": "sas",
        "dps_host": "global.azure-devices-provisioning.net",
        "dps_port": 8883,
        "hub_port": 8883,
        "model_id": "dtmi:com:example:Thermostat;1",
        "fingerprint": "sha256:0123456789abcdef",
        "trust": ["root-0.der"],
        "key": "device.key",
        "options": {"telemetry_interval": 5},
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


def test_valid_sas_identity_reads_every_field():
    identity = Identity(identity_doc(), "id-5f3a9c01")
    assert (identity.id_scope, identity.device_id, identity.auth) == ("0ne00ABCDEF", "dev-1", "sas")
    assert (identity.dps_port, identity.hub_port) == (8883, 8883)
    assert identity.trust == ["root-0.der"] and identity.key == "device.key" and identity.cert is None
    assert identity.telemetry_interval == 5
    assert identity.token_ttl == 3600  # default


def test_x509_identity_needs_cert_and_key_names():
    identity = Identity(identity_doc(auth="x509", cert="cert.der", key="key.der"), "id-1")
    assert (identity.cert, identity.key) == ("cert.der", "key.der")
    with pytest.raises(ConfigError, match="^cert must be a file name"):
        Identity(identity_doc(auth="x509", cert=..., key="key.der"), "id-1")


def test_ports_default_to_8883_and_model_id_may_be_null():
    identity = Identity(identity_doc(dps_port=..., hub_port=..., model_id=None), "id-1")
    assert (identity.dps_port, identity.hub_port, identity.model_id) == (8883, 8883, None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": 2}, "format"),
        ({"id_scope": ...}, "id_scope"),
        ({"id_scope": "0ne 00"}, "id_scope"),
        ({"device_id": "bad/id"}, "device_id"),
        ({"device_id": "x" * 129}, "device_id"),
        ({"device_id": "ends."}, "device_id"),
        ({"auth": "tpm"}, "auth"),
        ({"dps_host": ""}, "dps_host"),
        ({"dps_port": 0}, "dps_port"),
        ({"hub_port": "8883"}, "hub_port"),
        ({"hub_port": True}, "hub_port"),
        ({"model_id": "com:example;1"}, "model_id"),
        ({"fingerprint": ...}, "fingerprint"),
        ({"trust": []}, "trust"),
        ({"trust": ["../root.der"]}, "trust"),
        ({"options": {"telemetry_interval": 0}}, "options.telemetry_interval"),
        ({"options": {"token_ttl": "3600"}}, "options.token_ttl"),
        ({"options": {"backoff_min": 10, "backoff_max": 5}}, "options.backoff_max"),
        ({"options": {"ntp_servers": []}}, "options.ntp_servers"),
        ({"options": []}, "options"),
    ],
)
def test_each_bad_field_is_named_with_the_fix(change, field):
    with pytest.raises(ConfigError) as caught:
        Identity(identity_doc(**change), "id-1")
    message = str(caught.value)
    assert message.startswith(field + " ")
    assert "iotcprov provision" in message


def test_identity_must_be_an_object():
    with pytest.raises(ConfigError, match="JSON object"):
        Identity(["not", "an", "object"], "id-1")


def test_unknown_options_are_ignored_for_newer_hosts():
    assert Options({"ring_size": 50, "keepalive": 30}).keepalive == 30


@pytest.mark.parametrize(
    ("ttl", "margin", "renew_after"),
    [(3600, 120, 3480), (60, 120, 48), (300, 120, 240), (20, 120, 16), (3600, 600, 3000)],
)
def test_tokens_renew_early_by_the_margin_but_at_most_a_fifth_of_their_life(ttl, margin, renew_after):
    assert Options({"token_ttl": ttl, "token_margin": margin}).renew_after == renew_after


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("dev-1", True),
        ("a" * 128, True),
        ("a.b_c:d-", True),
        ("", False),
        ("a" * 129, False),
        ("dev 1", False),
        ("dev.", False),
        ("dév", False),
        (None, False),
    ],
)
def test_registration_id_rules(text, ok):
    assert valid_registration_id(text) is ok


def test_wifi_settings():
    assert parse_wifi({"ssid": "home", "password": "pw"}) == ("home", "pw")
    assert parse_wifi({"ssid": "open"}) == ("open", "")
    for bad in ({"password": "x"}, {"ssid": ""}, {"ssid": "a", "password": 5}, "home"):
        with pytest.raises(ConfigError):
            parse_wifi(bad)


def test_assignment_cache_round_trip_and_invalidation():
    identity = Identity(identity_doc(), "id-1")
    doc = assignment_doc(identity, "hub-1.example.net", "dev-1")
    assert cached_assignment(doc, identity) == ("hub-1.example.net", "dev-1")
    assert cached_assignment(None, identity) == (None, "no-cache")
    assert cached_assignment({**doc, "format": 9}, identity) == (None, "no-cache")
    assert cached_assignment({**doc, "hub": ""}, identity) == (None, "cache-invalid")
    for change in ({"fingerprint": "sha256:ffff"}, {"id_scope": "0ne00OTHER"}, {"device_id": "dev-2"}):
        other = Identity(identity_doc(**change), "id-1")
        assert cached_assignment(doc, other) == (None, "identity-changed")
    assert cached_assignment(doc, Identity(identity_doc(), "id-2")) == (None, "identity-changed")


def settings_board(tmp_path, folder_wifi, legacy_wifi):
    """A data folder as provision leaves it, with wifi.json in the identity folder and/or in the
    data folder (where boards provisioned before this layout keep it)."""
    import base64
    import json

    data = tmp_path / "iotc-data"
    ident = data / "id-00000001"
    ident.mkdir(parents=True)
    (ident / "identity.json").write_text(json.dumps(identity_doc()))
    (ident / "device.key").write_text(base64.b64encode(bytes(32)).decode())
    (ident / "root-0.der").write_bytes(b"\x30\x82\x01\x00")
    (data / "active").write_text("id-00000001\n")
    for where, doc in ((ident, folder_wifi), (data, legacy_wifi)):
        if doc is not None:
            (where / "wifi.json").write_text(doc)
    return str(data)


@pytest.mark.parametrize(
    ("folder_wifi", "legacy_wifi", "expected"),
    [
        ('{"ssid":"new","password":"pw-new"}', '{"ssid":"old","password":"pw-old"}', ("new", "pw-new")),
        ('{"ssid":"new","password":"pw-new"}', "{not json", ("new", "pw-new")),
        (None, '{"ssid":"old","password":"pw-old"}', ("old", "pw-old")),  # provisioned before
        (None, None, None),
    ],
    ids=["folder-first", "folder-only-read", "legacy-fallback", "none"],
)
def test_wifi_settings_come_from_the_active_identity_folder(tmp_path, folder_wifi, legacy_wifi, expected):
    from iotc.settings import load

    assert load(settings_board(tmp_path, folder_wifi, legacy_wifi)).wifi == expected
