"""Input rules of the board commands, checked before any port is opened: one line naming the field,
exit code 2, nothing written. No board is needed (the ports named here do not exist)."""

import json
import os
from pathlib import Path

import pytest
from iotcprov.board import flash
from iotcprov.board.firmware_options import option_names
from iotcprov.board.identity import WifiSettings
from iotcprov.cli import main
from iotcprov.errors import InputError
from iotcprov.validation import parse_options

from tests.board.conftest import GROUP_KEY, ID_SCOPE, make_esp_image

NO_PORT = "/nonexistent/ttyUSB9"


def test_options_are_json_values_checked_by_the_firmware_rules():
    assert parse_options(["telemetry_interval=30", 'ntp_servers=["192.168.1.1"]', "watchdog=0"]) == {
        "telemetry_interval": 30, "ntp_servers": ["192.168.1.1"], "watchdog": 0,
    }  # fmt: skip
    with pytest.raises(InputError, match=r"^--option: 'telemetry_interval' is not NAME=VALUE"):
        parse_options(["telemetry_interval"])


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["token_ttl=5"], r"^--option token_ttl must be a whole number 20-86400$"),
        (["telemetry_interval=true"], r"^--option telemetry_interval must be a whole number 1-86400$"),
        (["telemtry_interval=30"], r"^--option telemtry_interval: no such firmware option; use one of: tele"),
        (["ntp_servers=pool.ntp.org"], r"^--option ntp_servers must be a non-empty list of host names$"),
        (["backoff_min=10", "backoff_max=5"], r"^--option backoff_max must not be below backoff_min$"),
        (["watchdog=5"], r"^--option watchdog must be 0 \(off\) or 40-3600 s"),
    ],
)
def test_options_the_board_would_refuse_are_refused_on_the_host(pairs, expected):
    with pytest.raises(InputError, match=expected):
        parse_options(pairs)


def test_every_firmware_option_is_known_to_the_host():
    """The names the firmware reads (its table and the two read apart) are the host's list."""
    config = (Path(__file__).parents[2] / "firmware" / "iotc" / "config.py").read_text()
    for name in option_names():
        assert f'"{name}"' in config, name
    table = config[config.index("OPTIONS = (") : config.index("\n)\n", config.index("OPTIONS = ("))]
    assert table.count("(\"") == len(option_names()) - 2


def test_the_filesystem_image_takes_wifi_settings_with_or_without_an_identity():
    files = flash.filesystem_files(wifi=WifiSettings("lab", "pw-123"))
    assert json.loads(files["/iotc-data/wifi.json"]) == {"ssid": "lab", "password": "pw-123"}
    assert "/iotc-data/active" not in files and "/lib/iotc/deployed.json" in files


def _refused(capsys, monkeypatch, tmp_path, *args: str) -> str:
    """Run the CLI in tmp_path; it must refuse with one line and write nothing there."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("IOTCPROV_")]:
        monkeypatch.delenv(name)
    before = sorted(tmp_path.rglob("*"))
    try:
        code = main(list(args))
    except SystemExit as stop:  # argparse's own refusals (a value of the wrong type)
        code = stop.code
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert sorted(tmp_path.rglob("*")) == before
    return error


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--wifi-ssid", "lab"], "--fs: identity and Wi-Fi options need --fs"),
        (["--device-id", "dev-1", "--id-scope", ID_SCOPE], "--fs: identity and Wi-Fi options need --fs"),
        (["--fs", "--wifi-password", "pw-123"], "--wifi-password: give --wifi-ssid too"),
        (["--fs", "--option", "x"], "--option: 'x' is not NAME=VALUE"),
    ],
)
def test_flash_refuses_bad_options_before_the_port(capsys, monkeypatch, tmp_path, args, expected):
    firmware = tmp_path / "fw.bin"
    make_esp_image(firmware)
    if "--option" in args:
        args = [*args, "--device-id", "dev-1", "--id-scope", ID_SCOPE, "--group-key", GROUP_KEY]
    error = _refused(
        capsys, monkeypatch, tmp_path, "flash", "--port", NO_PORT, "--firmware", str(firmware), *args
    )
    assert error.startswith(f"iotcprov: error: {expected}"), error
    assert "pw-123" not in error


def test_provision_refuses_an_option_the_board_would_refuse_before_the_port(capsys, monkeypatch, tmp_path):
    error = _refused(capsys, monkeypatch, tmp_path, "provision", "--port", NO_PORT, "--id-scope", ID_SCOPE,
                     "--device-id", "dev-1", "--group-key", GROUP_KEY, "--option", "token_ttl=5")  # fmt: skip
    assert error.startswith("iotcprov: error: --option token_ttl must be a whole number 20-86400"), error


def test_deploy_refuses_a_folder_without_the_firmware_before_the_port(capsys, monkeypatch, tmp_path):
    (tmp_path / "fw").mkdir()
    source = str(tmp_path / "fw")
    error = _refused(capsys, monkeypatch, tmp_path, "deploy", "--port", NO_PORT, "--source", source)
    assert error.startswith("iotcprov: error: --source: ") and "has no iotc/__init__.py" in error


def test_factory_names_its_own_option_for_a_bad_image(capsys, monkeypatch, tmp_path):
    image = tmp_path / "not.bin"
    image.write_bytes(b"MZ not firmware" * 100)
    error = _refused(capsys, monkeypatch, tmp_path, "factory", "run", "--id-scope", ID_SCOPE, "--count", "2",
                     "--ports", NO_PORT, "--group-key", GROUP_KEY, "--flash-image", str(image))  # fmt: skip
    assert error.startswith("iotcprov: error: --flash-image: not an ESP firmware image"), error


def _device_cert(folder: Path, common_name: str, **validity) -> tuple[str, str]:
    """A leaf for `common_name` from a throw-away CA, as PEM files (validity: pki's days=, now=)."""
    from iotcprov.credentials import pki

    ca_key, leaf_key = pki.generate_key(), pki.generate_key()
    ca = pki.make_root_ca("Test Root", ca_key, now=_days_ago(800))
    leaf = pki.make_device_cert(common_name, leaf_key, ca, ca_key, **validity)
    cert, key = folder / f"{common_name}.pem", folder / f"{common_name}.key.pem"
    cert.write_bytes(pki.cert_to_pem(leaf))
    key.write_bytes(pki.key_to_pem(leaf_key))
    return str(cert), str(key)


def _days_ago(days: int):
    import datetime

    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)


@pytest.mark.parametrize(
    ("cn", "validity", "expected"),
    [
        ("dev-2", {}, "--cert: the certificate's subject CN is 'dev-2', not the --device-id 'dev-1'"),
        ("dev-1", {"days": 30, "now": _days_ago(31)}, "--cert: the certificate expired on "),
        ("dev-1", {"days": 30, "now": _days_ago(-2)}, "--cert: the certificate is not valid before "),
    ],
    ids=["other-cn", "expired", "not-yet-valid"],
)
@pytest.mark.parametrize("command", ["provision", "flash"])
def test_a_certificate_dps_would_refuse_is_refused_before_the_port(
    capsys, monkeypatch, tmp_path, cn, validity, expected, command
):
    cert, key = _device_cert(tmp_path, cn, **validity)
    firmware = tmp_path / "fw.bin"
    make_esp_image(firmware)
    where = ["--port", NO_PORT] + (["--firmware", str(firmware), "--fs"] if command == "flash" else [])
    error = _refused(capsys, monkeypatch, tmp_path, command, *where, "--id-scope", ID_SCOPE,
                     "--device-id", "dev-1", "--cert", cert, "--key", key)  # fmt: skip
    assert error.startswith(f"iotcprov: error: {expected}"), error


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        # unquoted in a shell, dtmi:com:example:Sensor;1 loses its `;1`
        ("dtmi:com:example:Sensor", "has no ';VERSION' (quote the value in a shell"),
        ("dtmi:com:example:Sensor;0", "has a version that is not a whole number from 1 to 999999999"),
        ("dtmi:com:example:Sensor;1000000000", "has a version that is not a whole number"),
        ("dtmi:com:example_:Sensor;1", "has the segment 'example_'"),
        ("dtmi:com:9lives:Sensor;1", "has the segment '9lives'"),
        ("dtmi:com::Sensor;1", "has the segment ''"),
        ("thermostat", "'thermostat' does not start with 'dtmi:'"),
    ],
)
def test_a_model_id_that_is_not_a_dtmi_is_refused(capsys, monkeypatch, tmp_path, model_id, expected):
    error = _refused(capsys, monkeypatch, tmp_path, "provision", "--port", NO_PORT, "--id-scope", ID_SCOPE,
                     "--device-id", "dev-1", "--group-key", GROUP_KEY, "--model-id", model_id)  # fmt: skip
    assert error.startswith("iotcprov: error: --model-id: ") and expected in error, error
    assert "give a DTMI such as dtmi:com:example:Thermostat;1" in error


KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # a well-formed key, pasted where it does not belong


@pytest.mark.parametrize(
    "misplaced",
    [
        ["--id-scope", KEY],
        ["--device-id", KEY],
        ["--hub-port", KEY],
        ["--dps-host", KEY],
        ["--dps-host", "localhost:" + KEY],
        ["--trust", KEY],
        ["--option", KEY],
        ["--model-id", KEY],
    ],
    ids=lambda args: args[0] + (":port" if ":" in args[1] else ""),
)
def test_a_key_given_to_the_wrong_option_is_not_echoed(capsys, monkeypatch, tmp_path, misplaced):
    given = dict(zip(["--id-scope", "--device-id"], [ID_SCOPE, "dev-1"], strict=True))
    given[misplaced[0]] = misplaced[1]
    error = _refused(capsys, monkeypatch, tmp_path, "provision", "--port", NO_PORT, "--group-key", GROUP_KEY,
                     *[part for pair in given.items() for part in pair])  # fmt: skip
    assert error.startswith(f"iotcprov: error: {misplaced[0]}") or f"argument {misplaced[0]}" in error, error
    assert KEY[:12] not in error and KEY.rstrip("=")[-12:] not in error, error


@pytest.mark.parametrize(("ssid", "size"), [("n" * 33, 33), ("ü" * 17, 34), ("", 0)])
def test_a_wifi_name_no_access_point_can_have_is_refused(capsys, monkeypatch, tmp_path, ssid, size):
    error = _refused(capsys, monkeypatch, tmp_path, "provision", "--port", NO_PORT, "--id-scope", ID_SCOPE,
                     "--device-id", "dev-1", "--group-key", GROUP_KEY, "--wifi-ssid", ssid)  # fmt: skip
    expected = f"iotcprov: error: --wifi-ssid: {size} bytes; a Wi-Fi network name (SSID) is 1 to 32"
    assert error.startswith(expected), error
    assert WifiSettings("n" * 32, "").ssid == "n" * 32
