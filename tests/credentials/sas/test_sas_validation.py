"""iotcprov.validation: one test per rule with a bad value; the error names the field and, for IDs,
the bad character and its position. Keys never appear in messages."""

import base64

import pytest
from iotcprov import validation
from iotcprov.errors import InputError

KEY = base64.b64encode(bytes(range(32))).decode()


def error_of(check, *args, **kwargs) -> str:
    with pytest.raises(InputError) as caught:
        check(*args, **kwargs)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_device_id_accepts_iot_central_ids():
    assert validation.validate_device_id("Dev-01-" + "a" * 121) == "Dev-01-" + "a" * 121


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "--device-id: empty"),
        ("a" * 129, "--device-id: 129 characters; IoT Central allows at most 128"),
        ("dev_1", "--device-id: character '_' at position 4 is not allowed"),
        ("dev 1", "--device-id: character ' ' at position 4"),
        ("dev.1", "--device-id: character '.' at position 4"),
        ("dévice", "--device-id: character 'é' at position 2"),
        ("dev-١", "--device-id: character '١' at position 5"),  # a non-ASCII digit
    ],
)
def test_device_id_rules(value, expected):
    assert expected in error_of(validation.validate_device_id, value)


def test_device_id_error_uses_the_given_field():
    assert error_of(validation.validate_device_id, "a/b", field="--registration").startswith(
        "--registration:"
    )


@pytest.mark.parametrize("value", ["dev-1", "a.b_c:d", "X" * 128, "ends-with-dash-"])
def test_registration_id_accepts_dps_ids(value):
    assert validation.validate_registration_id(value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "--registration-id: empty"),
        ("a" * 129, "at most 128"),
        ("dev/1", "character '/' at position 4"),
        ("dev.", "ends with '.'"),
        ("dev_", "ends with '_'"),
    ],
)
def test_registration_id_rules(value, expected):
    assert expected in error_of(validation.validate_registration_id, value)


@pytest.mark.parametrize("value", ["", "0ne00ABCDE", "0ne00ABCDEFG", "1ne00ABCDEF", "0ne00ABC-EF"])
def test_id_scope_rule(value):
    assert error_of(validation.validate_id_scope, value).startswith("--id-scope:")


def test_a_lower_case_id_scope_is_refused_with_the_spelling_to_use():
    """DPS compares the scope as given: 0ne00abcdef would fail at registration, not here."""
    assert validation.validate_id_scope("0ne00ABCDEF") == "0ne00ABCDEF"
    for value in ("0ne00abcdef", "0ne00ABCdef", "0NE00ABCDEF"):
        assert error_of(validation.validate_id_scope, value) == (
            f"--id-scope: {value!r} is in the wrong case; DPS compares the scope as given: "
            "use 0ne00ABCDEF, as IoT Central shows it"
        )


def test_id_scope_error_does_not_echo_a_key_given_by_mistake():
    message = error_of(validation.validate_id_scope, KEY)
    assert KEY not in message and "44 characters" in message


@pytest.mark.parametrize(
    "value", ["", "localhost", "https://h.azure-devices.net", "h.azure-devices.net:8883", "h..net", "-h.net"]
)
def test_hub_host_rule(value):
    assert error_of(validation.validate_hub_host, value).startswith("--hub:")


def test_hub_host_accepts_a_host():
    assert validation.validate_hub_host("iotc-1234.azure-devices.net") == "iotc-1234.azure-devices.net"


def test_key_decodes():
    assert validation.validate_key(f"  {KEY}\n") == bytes(range(32))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "empty"),
        ("not*base64*at*all=", "not valid base64"),
        (KEY[:-2], "not valid base64"),  # padding lost in a bad copy
        ("AAAAAAAAAAAAAAAAAAAAAB==", "not valid base64"),  # non-canonical: the board would refuse it
        (base64.b64encode(bytes(15)).decode(), "decodes to 15 bytes; a key must be 16 to 64 bytes"),
        (base64.b64encode(bytes(65)).decode(), "decodes to 65 bytes"),
    ],
)
def test_key_rules_never_echo_the_key(value, expected):
    message = error_of(validation.validate_key, value, field="--group-key")
    assert message.startswith("--group-key:") and expected in message
    assert not value or value not in message


@pytest.mark.parametrize("count", [0, 15, 65, -1])
def test_key_bytes_rule(count):
    assert error_of(validation.validate_key_bytes, count).startswith(f"--bytes: {count} is out of range")


@pytest.mark.parametrize("seconds", [0, -5])
def test_ttl_rule(seconds):
    assert (
        error_of(validation.validate_ttl, seconds) == f"--ttl: {seconds} is not a positive number of seconds"
    )


def test_expiry_rule():
    assert validation.validate_expiry(1001, now=1000) == 1001
    assert error_of(validation.validate_expiry, 1000, now=1000).startswith(
        "--expiry: 1000 is not in the future"
    )


def test_device_id_file_plain_lines(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# line one is a comment\ndev-1\n\n  dev-2  \n", encoding="utf-8")
    entries = validation.read_device_id_file(path)
    assert [(e.line, e.device_id) for e in entries] == [(2, "dev-1"), (4, "dev-2")]


def test_device_id_file_csv_with_bom_and_extra_columns(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("\ufeffserial,Device_ID\nS1,dev-1\nS2,dev-2\n", encoding="utf-8")
    entries = validation.read_device_id_file(path)
    assert [e.device_id for e in entries] == ["dev-1", "dev-2"]
    assert entries[1].columns == {"serial": "S2", "device_id": "dev-2"} and entries[1].line == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("dev-1\ndev_2\n", "--device-ids: line 2: character '_' at position 4"),
        ("dev-1\n\nDEV-1\n", "--device-ids: line 3: device ID 'DEV-1' repeats line 1"),
        ("serial,name\nS1,dev-1\n", "--device-ids: line 1: the CSV header has no 'device_id' column"),
        ("device_id,serial\ndev-1,S1\ndev-2\n", "--device-ids: line 3: 1 columns where the header has 2"),
        ("device_id\n", "--device-ids: the CSV has a header but no device rows"),
        ("# nothing\n\n", "holds no device IDs"),
    ],
)
def test_device_id_file_errors_name_the_line(tmp_path, content, expected):
    path = tmp_path / "ids.txt"
    path.write_text(content, encoding="utf-8")
    assert expected in error_of(validation.read_device_ids, path)


def test_device_id_file_missing_or_binary(tmp_path):
    assert "cannot read" in error_of(validation.read_device_ids, tmp_path / "absent.txt")
    binary = tmp_path / "ids.bin"
    binary.write_bytes(b"\xff\xfe\x00dev")
    assert "is not UTF-8 text" in error_of(validation.read_device_ids, binary)
