"""The package carries its firmware and board profiles, and the CLI starts."""

import json
import subprocess
import sys

import pytest
from iotcprov import resources
from iotcprov.errors import InputError

REQUIRED_PROFILE_KEYS = {
    "name", "chip", "firmware_offset", "partition_table_offset", "default_flash_size",
    "vfs_offset", "littlefs", "usb_ids", "flash_baud",
}


def test_firmware_files_are_found():
    assert (resources.firmware_dir() / "iotc" / "__init__.py").is_file()


@pytest.mark.parametrize(
    "name", ["esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c5", "esp32c6", "esp32p4", "virtual"]
)
def test_board_profiles_are_complete(name):
    profile = resources.load_board_profile(name)
    assert profile.keys() >= REQUIRED_PROFILE_KEYS
    assert int(profile["firmware_offset"], 16) in (0x0, 0x1000, 0x2000)
    assert profile["littlefs"]["block_size"] == 4096


def test_bootloader_offsets_follow_the_chip():
    assert resources.load_board_profile("esp32")["firmware_offset"] == "0x1000"
    assert resources.load_board_profile("esp32s3")["firmware_offset"] == "0x0"
    assert resources.load_board_profile("esp32c5")["firmware_offset"] == "0x2000"


def test_unknown_board_names_the_choices():
    with pytest.raises(InputError, match="--board: unknown board 'esp8266'.*esp32"):
        resources.load_board_profile("esp8266")


def test_cli_version():
    out = subprocess.run([sys.executable, "-m", "iotcprov", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("iotcprov ")


def test_wheel_carries_firmware_and_boards(tmp_path):
    import pathlib
    import zipfile

    root = pathlib.Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(root)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("iotcprov-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "iotcprov/firmware/iotc/__init__.py" in names
    assert "iotcprov/boards/esp32.json" in names
    # the dashboards work offline: every page, style and script ships in the wheel
    static = root / "host" / "iotcprov" / "dashboard" / "static"
    assert {f"iotcprov/dashboard/static/{p.name}" for p in static.iterdir()} <= names
    profile = json.loads(zipfile.ZipFile(wheel).read("iotcprov/boards/virtual.json"))
    assert profile["chip"] == "virtual"
