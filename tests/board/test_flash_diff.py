"""`flash` writes only what the board does not already hold, decided by the flash MD5 esptool's
stub computes: against the emulated ROM loader, a re-flash with identical content writes nothing,
and a one-byte change is rewritten (its sector alone) and reads back.

The firmware compresses as a real one does (`code_like`): esptool pads an uncompressed block with
0xFF to its 16 KB write size, which the stub ignores past the write's length and the mock does not.
"""

import hashlib

import pytest
from iotcprov.board import flash
from iotcprov.board.flash_diff import COARSE, SECTOR, changed_spans

from tests.board.firmware_images import GENERIC_4MIB, code_like, make_micropython_bin

FW_OFFSET, VFS_OFFSET = 0x1000, 0x200000
FS_FILES = {"/lib/iotc/app.py": b"print('app')\n" * 300, "/main.py": b"import iotc.app\n"}


def test_reflash_with_identical_content_writes_nothing(rom_loader, tmp_path):
    firmware = make_micropython_bin(tmp_path / "fw.bin", GENERIC_4MIB, payload=code_like)
    first = flash.flash(rom_loader.url, firmware, "esp32", fs_files=FS_FILES)
    # on a blank flash, the sectors that are all 0xFF in the images are already there
    assert 0 < first.bytes_written < len(firmware) + (2 << 20)
    assert rom_loader.read_flash(FW_OFFSET, len(firmware)) == firmware
    again = flash.flash(rom_loader.url, firmware, "esp32", fs_files=FS_FILES)
    assert again.written == () and again.bytes_written == 0
    assert again.regions == first.regions


def test_a_changed_byte_is_rewritten_alone_and_reads_back(rom_loader, tmp_path):
    firmware = make_micropython_bin(tmp_path / "fw.bin", GENERIC_4MIB, payload=code_like)
    flash.flash(rom_loader.url, firmware, "esp32", fs_files=FS_FILES)
    position = len(firmware) - 5000  # inside the application's data
    changed = bytearray(firmware)
    changed[position] ^= 0xFF
    result = flash.flash(rom_loader.url, bytes(changed), "esp32", fs_files=FS_FILES)
    sector = position // SECTOR * SECTOR
    assert result.written == ((FW_OFFSET + sector, SECTOR),)
    assert rom_loader.read_flash(FW_OFFSET + sector, SECTOR) == changed[sector : sector + SECTOR]
    assert flash.flash(rom_loader.url, bytes(changed), "esp32", fs_files=FS_FILES).written == ()


def test_a_changed_file_rewrites_a_few_filesystem_sectors(rom_loader, tmp_path):
    firmware = make_micropython_bin(tmp_path / "fw.bin", GENERIC_4MIB, payload=code_like)
    flash.flash(rom_loader.url, firmware, "esp32", fs_files=FS_FILES)
    files = {**FS_FILES, "/main.py": b"import iotc.app  \n"}
    result = flash.flash(rom_loader.url, firmware, "esp32", fs_files=files)
    assert result.written and all(
        VFS_OFFSET <= offset < VFS_OFFSET + (2 << 20) for offset, _ in result.written
    )
    assert result.bytes_written <= 8 * SECTOR
    image = flash.build_image(flash.flashable_profile("esp32"), 2 << 20, files)
    for offset, length in result.written:
        start = offset - VFS_OFFSET
        assert rom_loader.read_flash(offset, length) == image[start : start + length]
    assert flash.flash(rom_loader.url, firmware, "esp32", fs_files=files).written == ()


class Flash:
    """A flash as bytes, answering MD5 questions as the stub does, and counting them."""

    def __init__(self, data: bytes) -> None:
        self.data, self.asked = data, 0

    def md5(self, offset: int, length: int) -> str:
        self.asked += 1
        return hashlib.md5(self.data[offset : offset + length]).hexdigest()


@pytest.mark.smoke
def test_spans_merge_adjacent_sectors_and_write_whole_when_mostly_changed():
    old = bytes(range(256)) * 1024  # 256 KB
    new = bytearray(old)
    new[5] ^= 1
    new[SECTOR + 7] ^= 1  # the next sector: one span of two
    new[3 * COARSE + 9] ^= 1
    flash_now = Flash(old)
    spans = changed_spans(flash_now.md5, 0, bytes(new))
    assert [(offset, len(data)) for offset, data in spans] == [(0, 2 * SECTOR), (3 * COARSE, SECTOR)]
    assert flash_now.asked == 1 + 4 + 2 * COARSE // SECTOR
    assert changed_spans(Flash(old).md5, 0, old) == []
    mostly = bytes(b ^ 1 for b in old[: 200 * 1024]) + old[200 * 1024 :]
    assert changed_spans(Flash(old).md5, 0, mostly) == [(0, mostly)]
