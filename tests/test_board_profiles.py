"""Every board profile agrees with the chip table of docs/compatibility.md, and vice versa."""

import json
import re
from pathlib import Path

import pytest
from iotcprov import resources

ROOT = Path(__file__).resolve().parents[1]
COMPATIBILITY = ROOT / "docs" / "compatibility.md"
RELEASES = ("v1.23", "v1.24", "v1.25", "v1.26", "v1.27", "v1.28")
ESPRESSIF_VID = "303a"
BRIDGES = {("10c4", "ea60"), ("1a86", "7523"), ("1a86", "55d4"), ("0403", "6001")}
SIZE_UNITS = {"KiB": 1024, "MiB": 1024 * 1024}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_after(marker: str) -> list[dict[str, str]]:
    """The markdown table that starts at the first line beginning with `marker`, as dicts."""
    lines = COMPATIBILITY.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(marker))
    header = _cells(lines[start])
    assert set(lines[start + 1]) <= set("|-: "), "a header separator row follows the header"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def chip_table() -> dict[str, dict[str, str]]:
    return {row["chip"]: row for row in _table_after("| chip | esptool chip |")}


def release_table() -> dict[str, dict[str, str]]:
    """Rows keyed by their first cell without markup: "generic builds", "umqtt.simple frozen", ..."""
    return {re.sub(r"[*`]", "", row[""]): row for row in _table_after("| | v1.23 |")}


def _size(text: str) -> int:
    number, unit = text.split()
    return int(number) * SIZE_UNITS[unit]


def _usb_ids(text: str) -> set[tuple[str, str]]:
    if text == "none":
        return set()
    return {tuple(item.strip().split(":")) for item in text.split(",")}


def _profile_files() -> dict[str, dict]:
    paths = resources.boards_dir().glob("*.json")
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in paths}


CHIPS = sorted(chip_table())


def test_every_chip_has_a_profile_and_every_profile_a_row():
    profiles = set(resources.board_names()) - {"virtual"}
    assert profiles == set(CHIPS)
    generic = {"esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c5", "esp32c6", "esp32p4"}
    assert set(CHIPS) >= generic  # MicroPython's ESP32_GENERIC* builds, v1.23-v1.28


@pytest.mark.parametrize("chip", CHIPS)
def test_profile_matches_the_table(chip):
    row = chip_table()[chip]
    profile = resources.load_board_profile(chip)
    assert profile["name"] == profile["chip"] == chip
    assert profile["esptool_chip"] == row["esptool chip"]
    assert int(profile["firmware_offset"], 16) == int(row["bootloader offset"], 16)
    assert int(profile["partition_table_offset"], 16) == int(row["partition table offset"], 16)
    assert int(profile["vfs_offset"], 16) == int(row["vfs offset"], 16)
    assert profile["default_flash_size"] == _size(row["default flash size"])
    native = {(u["vid"], u["pid"]) for u in profile["usb_ids"] if u["vid"] == ESPRESSIF_VID}
    assert native == _usb_ids(row["native USB"])
    assert row["first release"] in RELEASES


@pytest.mark.parametrize("chip", CHIPS)
def test_first_release_matches_the_release_table(chip):
    builds = release_table()["generic builds"]
    present = [release for release in RELEASES if chip in re.split(r",\s*", builds[release])]
    assert present, f"{chip} has no generic build in any release"
    assert present[0] == chip_table()[chip]["first release"]
    assert present == list(RELEASES[RELEASES.index(present[0]) :]), "a build, once there, stays"


def test_release_table_names_only_profiled_chips():
    builds = release_table()["generic builds"]
    named = {chip for release in RELEASES for chip in re.split(r",\s*", builds[release])}
    assert named == set(CHIPS)


def test_umqtt_versions_per_release():
    umqtt = release_table()["umqtt.simple frozen"]
    assert [umqtt[r] for r in RELEASES] == ["1.4.0", "1.4.0", "1.6.0", "1.6.0", "1.7.0", "1.7.0"]


@pytest.mark.parametrize("name", sorted(_profile_files()))
def test_profile_fields_are_valid(name):
    profile = _profile_files()[name]
    assert profile["name"] == name
    for field in ("firmware_offset", "partition_table_offset", "vfs_offset"):
        assert re.fullmatch(r"0x[0-9a-f]+", profile[field]), field
    firmware = int(profile["firmware_offset"], 16)
    table = int(profile["partition_table_offset"], 16)
    vfs = int(profile["vfs_offset"], 16)
    assert firmware in (0x0, 0x1000, 0x2000)
    assert firmware < table < vfs < profile["default_flash_size"]
    assert vfs % 4096 == 0 and table % 4096 == 0
    size = profile["default_flash_size"]
    assert isinstance(size, int) and size >= 2 * 1024 * 1024 and size & (size - 1) == 0
    lfs = profile["littlefs"]
    assert lfs == {
        "block_size": 4096, "read_size": 32, "prog_size": 32, "lookahead_size": 32, "name_max": 255,
        "disk_version": "2.0",
    }
    assert isinstance(profile["watchdog_default"], bool)
    ids = [(u["vid"], u["pid"]) for u in profile["usb_ids"]]
    assert len(ids) == len(set(ids)), "no VID:PID twice"
    for usb in profile["usb_ids"]:
        assert re.fullmatch(r"[0-9a-f]{4}", usb["vid"]) and re.fullmatch(r"[0-9a-f]{4}", usb["pid"])
        assert usb["name"]
    if name == "virtual":
        assert profile["esptool_chip"] is None and ids == [] and profile["watchdog_default"] is False
    else:
        assert set(ids) >= BRIDGES, "every real chip lists the usual USB-UART bridges"
        assert profile["watchdog_default"] is True


@pytest.mark.parametrize("chip", CHIPS)
def test_esptool_knows_the_chip_and_its_bootloader_offset(chip):
    from esptool.targets import CHIP_DEFS

    profile = resources.load_board_profile(chip)
    target = CHIP_DEFS[profile["esptool_chip"]]
    assert target.CHIP_NAME.lower().replace("-", "") == chip  # as flash() compares the chip it finds
    assert int(profile["firmware_offset"], 16) == target.BOOTLOADER_FLASH_OFFSET
