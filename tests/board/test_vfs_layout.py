"""Where `flash --fs` puts the filesystem and how large, from the firmware's own partition table
(and, for MicroPython v1.26+ without a 'vfs' partition, the flash size): no board needed."""

import pytest
from iotcprov import resources
from iotcprov.board.fsimage import build_image, read_image
from iotcprov.board.vfs_layout import auto_vfs, micropython_version, plan_filesystem
from iotcprov.errors import InputError
from littlefs import LittleFS, LittleFSError
from littlefs.context import UserContext

from tests.board.firmware_images import (
    DATA,
    FAT,
    GENERIC_4MIB,
    GENERIC_8MIB,
    PLUS_4MIB,
    PLUS_8MIB_OTA,
    make_micropython_bin,
)

ESP32 = resources.load_board_profile("esp32")
S3 = resources.load_board_profile("esp32s3")
C3 = resources.load_board_profile("esp32c3")
MB = 1024 * 1024


def _region(tmp_path, rows, flash_size, version="v1.25.0", chip="esp32", profile=ESP32):
    firmware = make_micropython_bin(tmp_path / "fw.bin", rows, version, chip)
    region = plan_filesystem(firmware, profile).region(flash_size, "the chip")
    return region.offset, region.size


def test_generic_esp32_4mib_table(tmp_path):
    assert _region(tmp_path, GENERIC_4MIB, 4 * MB) == (0x200000, 0x200000)


def test_generic_s3_8mib_table(tmp_path):
    assert _region(tmp_path, GENERIC_8MIB, 8 * MB, chip="esp32s3", profile=S3) == (0x200000, 0x600000)


def test_a_16mb_module_with_a_4mib_table_firmware_gets_the_tables_2mib(tmp_path):
    assert _region(tmp_path, GENERIC_4MIB, 16 * MB) == (0x200000, 2 * MB)
    assert _region(tmp_path, GENERIC_4MIB, 16 * MB, version="v1.27.0") == (0x200000, 2 * MB)  # table wins
    assert _region(tmp_path, GENERIC_4MIB, 8 * MB, chip="esp32c3", profile=C3) == (0x200000, 2 * MB)


@pytest.mark.parametrize("version", ["v1.26.0", "v1.26.1", "v1.28.0", "v1.27.0-preview.12.gabc1234"])
def test_v126_without_vfs_fills_the_flash_after_the_last_partition(tmp_path, version):
    assert _region(tmp_path, PLUS_4MIB, 16 * MB, version) == (0x200000, 14 * MB)
    assert _region(tmp_path, PLUS_4MIB, 4 * MB, version) == (0x200000, 2 * MB)
    assert _region(tmp_path, PLUS_8MIB_OTA, 8 * MB, version) == (0x4F0000, 8 * MB - 0x4F0000)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v1.25.0", False),
        ("v1.26.0-preview.228.g0123abc", False),
        ("v1.26.0-preview.229.g2a0e2b5782", True),
        ("v1.26.0-preview", None),  # built without git: cannot place it
        ("v1.26.0", True),
        ("v1.26.1-dirty", True),
        ("v1.24.1", False),
        ("v2.0.0", True),
    ],
)
def test_which_versions_add_vfs_themselves(version, expected):
    assert auto_vfs(version) is expected


def test_the_version_is_read_from_the_banner(tmp_path):
    assert micropython_version(make_micropython_bin(tmp_path / "a.bin", PLUS_4MIB, "v1.26.1")) == "v1.26.1"
    assert micropython_version(make_micropython_bin(tmp_path / "b.bin", PLUS_4MIB, None)) is None


NO_VFS = "^--firmware: its partition table has no 'vfs' partition"
WITH_FFAT = [*PLUS_4MIB, ("ffat", DATA, FAT, 0x200000, 0x200000)]


@pytest.mark.parametrize(
    ("rows", "version", "message"),
    [
        (None, "v1.25.0", r"^--firmware: no usable ESP-IDF partition table at 0x7000 in the file \(no "),
        (PLUS_4MIB, "v1.25.0", NO_VFS + ", and MicroPython v1.25.0 then mounts no filesystem"),
        (PLUS_4MIB, None, NO_VFS + " and the file holds no MicroPython version string"),
        (PLUS_4MIB, "v1.26.0-preview", NO_VFS + " and the file holds MicroPython v1.26.0-preview, so where"),
        (WITH_FFAT, "v1.26.1", "^--firmware: its filesystem partition is 'ffat'"),
    ],
)
def test_firmware_that_says_no_littlefs_place_is_refused(tmp_path, rows, version, message):
    firmware = make_micropython_bin(tmp_path / "fw.bin", rows, version)
    with pytest.raises(InputError, match=message) as refused:
        plan_filesystem(firmware, ESP32)
    assert refused.value.exit_code == 2


def test_a_filesystem_beyond_the_flash_is_refused(tmp_path):
    too_big = r"^--firmware: the firmware's 'vfs' partition \(0x200000 \+ 0x600000\) ends at 8 MB, "
    with pytest.raises(InputError, match=too_big + r"but the flash is 4 MB \(from the chip\); flash the"):
        _region(tmp_path, GENERIC_8MIB, 4 * MB)
    with pytest.raises(InputError, match=r"0x4f0000 to the end of flash\) has no room, but the flash is 4"):
        _region(tmp_path, PLUS_8MIB_OTA, 4 * MB, version="v1.26.1")
    firmware = make_micropython_bin(tmp_path / "fw.bin", GENERIC_8MIB)
    with pytest.raises(InputError, match=r"\(from --flash-size\); give the board's real flash size"):
        plan_filesystem(firmware, ESP32).region(4 * MB, "--flash-size")


def test_the_image_mounts_only_with_the_partitions_block_count(tmp_path):
    _, size = _region(tmp_path, GENERIC_4MIB, 16 * MB)
    image = build_image(ESP32, size, {"/main.py": b"print(1)\n"})
    assert len(image) == 2 * MB
    assert read_image(ESP32, image) == {"/main.py": b"print(1)\n"}
    # What the old sizing did on a 16 MB module: MicroPython's LittleFS sees 512 blocks, not 3584.
    old = build_image(ESP32, 16 * MB - 0x200000, {"/main.py": b"print(1)\n"})
    with pytest.raises(LittleFSError):
        LittleFS(context=UserContext(buffer=bytearray(old[:size])), block_size=4096, block_count=512,
                 mount=False).mount()  # fmt: skip
