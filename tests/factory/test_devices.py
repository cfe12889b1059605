"""Device ID input: CSV files (with line numbers in every complaint) and generated ranges."""

import pytest
from iotcprov.errors import InputError
from iotcprov.factory.devices import DeviceEntry, generate_range, read_devices


def write(tmp_path, text: str, name: str = "devices.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_header_model_ids_comments_and_trailing_blank_lines(tmp_path):
    path = write(
        tmp_path,
        "\ufeffdevice_id,model_id,batch\n# line 2 is a comment\nline3-001,dtmi:com:example:A;1,7\n"
        "line3-002,,7\n\n\n",
    )
    assert read_devices(path) == [
        DeviceEntry("line3-001", "dtmi:com:example:A;1", 3),
        DeviceEntry("line3-002", None, 4),
    ]


def test_headerless_list_one_id_per_line(tmp_path):
    path = write(tmp_path, "a-1\r\nb-2,dtmi:x:y;2\r\n")
    assert read_devices(path) == [DeviceEntry("a-1", None, 1), DeviceEntry("b-2", "dtmi:x:y;2", 2)]


def test_every_problem_is_reported_with_its_line_number(tmp_path):
    path = write(
        tmp_path,
        "device_id,model_id\n"  # 1
        "dev-1,\n"  # 2
        "dev 2,\n"  # 3: illegal character
        "\n"  # 4: empty row
        "DEV-1,\n"  # 5: repeats line 2 (DPS compares case-insensitively)
        ",\n"  # 6: empty row
        ",dtmi:a:b;1\n"  # 7: empty ID
        "dev-3,thermostat\n"  # 8: not a DTMI
        "dev-4,a,b\n"  # 9: too many columns
        "dev_5\n"  # 10: illegal character
        "dev+6\n",  # 11: illegal character
    )
    with pytest.raises(InputError) as caught:
        read_devices(path)
    message = str(caught.value)
    assert message.startswith(f"--devices: {path}: 9 problems: line 3: ")
    for expected in (
        "line 3: device ID: character ' ' at position 4",
        "line 4: empty row",
        "line 5: device ID 'DEV-1' repeats line 2",
        "line 6: empty row",
        "line 7: empty device ID",
        "line 8: model ID: 'thermostat' does not start with 'dtmi:'",
        "line 9: 3 columns where the header has 2",
        "line 10: device ID: character '_' at position 4",
    ):
        assert expected in message
    assert "and 1 more" in message  # line 11, beyond the first eight shown
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "holds no device IDs"),
        ("# only a comment\n", "holds no device IDs"),
        ("device_id\n", "has a header but no device rows"),
        ("model_id,name\ndtmi:a:b;1,x\n", "line 1: the header has no 'device_id' column"),
    ],
)
def test_files_without_ids(tmp_path, text, expected):
    with pytest.raises(InputError, match=expected):
        read_devices(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "header"),
    [
        ("deviceId\nline3-001\n", "deviceId"),
        ("DeviceID,modelId\nline3-001,\n", "DeviceID"),
        ("# ids\nDevice ID\nline3-001\n", "Device ID"),
        ("id\nline3-001\n", "id"),
    ],
)
def test_a_misnamed_header_is_refused_not_taken_for_an_id(tmp_path, text, header):
    with pytest.raises(InputError) as refused:
        read_devices(write(tmp_path, text))
    message = str(refused.value)
    assert f"unknown header {header!r}; name the column 'device_id'" in message, message
    assert message.startswith("--devices: ") and "\n" not in message


def test_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_devices(tmp_path / "missing.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"device_id\ncaf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_devices(path)


def test_generated_range_is_zero_padded_to_the_widest_number():
    ids = [entry.device_id for entry in generate_range("line3-", 1, 500)]
    assert ids[0] == "line3-001" and ids[-1] == "line3-500" and len(set(ids)) == 500
    assert [e.device_id for e in generate_range("b", 98, 3)] == ["b098", "b099", "b100"]
    assert [e.device_id for e in generate_range("x-", 7, 2, width=5)] == ["x-00007", "x-00008"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("p-", 1, 0, None), "--count: 0 is out of range"),
        (("p-", -1, 5, None), "--start: -1 is negative"),
        (("p-", 1, 500, 2), "--width: 2 digits cannot hold 500; give --width 3"),
        (("line 3-", 1, 5, None), "--prefix: character ' ' at position 5"),
        (("x" * 126, 1, 500, None), "--prefix: IDs would be longer than 128"),
    ],
)
def test_bad_ranges(args, expected):
    with pytest.raises(InputError, match=expected):
        generate_range(*args)
