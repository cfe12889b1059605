"""`iotcprov keys`: derive, generate and sas, with keys from options, files and env vars."""

import base64
import csv
import io
import json
import subprocess
import sys
import time

import pytest
from iotcprov.cli import main
from iotcprov.credentials import sas

GROUP_KEY = base64.b64encode(bytes(range(64))).decode()
DEVICE_KEY = base64.b64encode(bytes(range(200, 232))).decode()


@pytest.fixture(autouse=True)
def no_key_env(monkeypatch):
    # A developer's exported keys must not leak into these tests.
    monkeypatch.delenv("IOTCPROV_GROUP_KEY", raising=False)
    monkeypatch.delenv("IOTCPROV_DEVICE_KEY", raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_input_error(result: tuple[int, str, str], field: str, *secrets: str) -> str:
    code, out, err = result
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"iotcprov: error: {field}")
    for secret in secrets:
        assert secret not in err
    return err


@pytest.mark.smoke
def test_derive_prints_only_the_device_key(capsys):
    code, out, err = run(capsys, "keys", "derive", "--group-key", GROUP_KEY, "--device-id", "dev-1")
    assert code == 0 and err == ""
    assert out == sas.derive_device_key(GROUP_KEY, "dev-1") + "\n"


def test_derive_json(capsys):
    code, out, _ = run(capsys, "keys", "derive", "--group-key", GROUP_KEY, "--device-id", "dev-1", "--json")
    assert code == 0
    assert json.loads(out) == {"device_id": "dev-1", "device_key": sas.derive_device_key(GROUP_KEY, "dev-1")}


@pytest.mark.parametrize("content", ["dev-1\ndev-2\n", "device_id,serial\ndev-1,S1\ndev-2,S2\n"])
def test_derive_from_file_prints_csv(capsys, tmp_path, content):
    ids = tmp_path / "ids.csv"
    ids.write_text(content, encoding="utf-8")
    code, out, _ = run(capsys, "keys", "derive", "--group-key", GROUP_KEY, "--device-ids", str(ids))
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["device_id", "device_key"],
        ["dev-1", sas.derive_device_key(GROUP_KEY, "dev-1")],
        ["dev-2", sas.derive_device_key(GROUP_KEY, "dev-2")],
    ]


def test_derive_from_file_json(capsys, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("dev-1\ndev-2\n", encoding="utf-8")
    code, out, _ = run(capsys, "keys", "derive", "--group-key", GROUP_KEY, "--device-ids", str(ids), "--json")
    assert code == 0
    assert [d["device_id"] for d in json.loads(out)] == ["dev-1", "dev-2"]


def test_derive_file_with_one_bad_line_prints_nothing(capsys, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("dev-1\ndev 2\n", encoding="utf-8")
    result = run(capsys, "keys", "derive", "--group-key", GROUP_KEY, "--device-ids", str(ids))
    err = assert_input_error(result, "--device-ids: line 2: character ' ' at position 4", GROUP_KEY)
    assert sas.derive_device_key(GROUP_KEY, "dev-1") not in err


def test_group_key_from_env_and_file(capsys, tmp_path, monkeypatch):
    expected = sas.derive_device_key(GROUP_KEY, "dev-1") + "\n"
    key_file = tmp_path / "group.key"
    key_file.write_text(GROUP_KEY + "\n", encoding="utf-8")
    assert (
        run(capsys, "keys", "derive", "--group-key-file", str(key_file), "--device-id", "dev-1")[1]
        == expected
    )
    monkeypatch.setenv("IOTCPROV_GROUP_KEY", GROUP_KEY)
    assert run(capsys, "keys", "derive", "--device-id", "dev-1")[1] == expected
    result = run(capsys, "keys", "derive", "--group-key-file", str(key_file), "--device-id", "dev-1")
    assert_input_error(
        result, "--group-key: given by both --group-key-file and IOTCPROV_GROUP_KEY", GROUP_KEY
    )


def test_bad_group_key_names_the_field_not_the_key(capsys):
    short = base64.b64encode(b"0123456789").decode()
    result = run(capsys, "keys", "derive", "--group-key", short, "--device-id", "dev-1")
    assert_input_error(result, "--group-key: decodes to 10 bytes", short)


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--device-id", "dev_1"], "--device-id: character '_' at position 4"),
        ([], "--device-id: give --device-id ID or --device-ids FILE"),
        (["--device-id", "a", "--device-ids", "x"], "--device-id: give --device-id ID or --device-ids FILE"),
    ],
)
def test_derive_bad_input(capsys, argv, field):
    assert_input_error(run(capsys, "keys", "derive", "--group-key", GROUP_KEY, *argv), field, GROUP_KEY)


@pytest.mark.smoke
def test_generate_default_and_sized(capsys):
    code, out, _ = run(capsys, "keys", "generate")
    assert code == 0 and len(base64.b64decode(out.strip(), validate=True)) == 64
    second = run(capsys, "keys", "generate")[1]
    assert second != out  # fresh randomness each time
    code, out, _ = run(capsys, "keys", "generate", "--bytes", "16", "--json")
    document = json.loads(out)
    assert document["bytes"] == 16 and len(base64.b64decode(document["key"])) == 16


@pytest.mark.parametrize("count", ["15", "65"])
def test_generate_bad_size(capsys, count):
    assert_input_error(run(capsys, "keys", "generate", "--bytes", count), f"--bytes: {count} is out of range")


def test_sas_dps_token_with_expiry(capsys):
    code, out, _ = run(
        capsys,
        "keys",
        "sas",
        "--key",
        DEVICE_KEY,
        "--device-id",
        "dev-1",
        "--id-scope",
        "0ne00ABCDEF",
        "--expiry",
        "4102444800",
    )
    assert code == 0
    assert out == sas.dps_token(DEVICE_KEY, "0ne00ABCDEF", "dev-1", 4102444800) + "\n"


def test_sas_hub_token_with_ttl_verifies(capsys):
    before = int(time.time())
    code, out, _ = run(
        capsys,
        "keys",
        "sas",
        "--key",
        DEVICE_KEY,
        "--device-id",
        "dev-1",
        "--hub",
        "iotc-1.azure-devices.net",
        "--ttl",
        "120",
        "--json",
    )
    after = int(time.time())
    document = json.loads(out)
    assert code == 0 and document["resource"] == "iotc-1.azure-devices.net/devices/dev-1"
    assert before + 120 <= document["expiry"] <= after + 120
    parsed = sas.verify_token(document["token"], DEVICE_KEY, document["resource"], now=after)
    assert parsed.policy is None and parsed.expiry == document["expiry"]


def test_sas_key_from_env_and_file(capsys, tmp_path, monkeypatch):
    expected = sas.hub_token(DEVICE_KEY, "h.azure-devices.net", "dev-1", 4102444800) + "\n"
    argv = ["keys", "sas", "--device-id", "dev-1", "--hub", "h.azure-devices.net", "--expiry", "4102444800"]
    key_file = tmp_path / "device.key"
    key_file.write_text(DEVICE_KEY, encoding="utf-8")
    assert run(capsys, *argv, "--key-file", str(key_file))[1] == expected
    monkeypatch.setenv("IOTCPROV_DEVICE_KEY", DEVICE_KEY)
    assert run(capsys, *argv)[1] == expected


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--id-scope", "0ne00ABCDEF", "--hub", "h.azure-devices.net"], "--id-scope: give --id-scope"),
        ([], "--id-scope: give --id-scope"),
        (["--id-scope", "scope"], "--id-scope: 'scope' is not an ID scope"),
        (["--hub", "https://h.azure-devices.net/"], "--hub: the value (28 characters) is not a host name"),
        (["--id-scope", "0ne00ABCDEF", "--ttl", "0"], "--ttl: 0 is not a positive number"),
        (["--id-scope", "0ne00ABCDEF", "--expiry", "946684800"], "--expiry: 946684800 is not in the future"),
        (
            ["--id-scope", "0ne00ABCDEF", "--ttl", "5", "--expiry", "4102444800"],
            "--ttl: give --ttl or --expiry",
        ),
    ],
)
def test_sas_bad_input(capsys, extra, field):
    result = run(capsys, "keys", "sas", "--key", DEVICE_KEY, "--device-id", "dev-1", *extra)
    assert_input_error(result, field, DEVICE_KEY)


def test_sas_missing_key_names_all_sources(capsys):
    result = run(capsys, "keys", "sas", "--device-id", "dev-1", "--hub", "h.azure-devices.net")
    assert_input_error(result, "--key: missing; give --key, --key-file PATH, or set IOTCPROV_DEVICE_KEY")


def test_usage_errors_are_one_line_and_hide_values(capsys):
    result = run(capsys, "keys", "derive", "--grup-key", GROUP_KEY, "--device-id", "dev-1")
    assert_input_error(result, "unrecognized arguments: --grup-key", GROUP_KEY)
    result = run(capsys, "keys", "sas", f"--key-f={DEVICE_KEY}", "--device-id", "dev-1")
    assert_input_error(result, "unrecognized arguments: --key-f", DEVICE_KEY)


@pytest.mark.smoke
def test_installed_command_reads_key_from_stdin():
    done = subprocess.run(
        [sys.executable, "-m", "iotcprov", "keys", "derive", "--group-key-file", "-", "--device-id", "dev-1"],
        input=GROUP_KEY + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == sas.derive_device_key(GROUP_KEY, "dev-1") + "\n"
    done = subprocess.run(
        [sys.executable, "-m", "iotcprov", "keys", "derive", "--group-key-file", "-", "--device-id", "dev/1"],
        input=GROUP_KEY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr == "iotcprov: error: --device-id: character '/' at position 4 is not allowed; "
        "use letters, digits and '-' only\n"
    )
