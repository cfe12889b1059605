"""MicroPython-like .bin files for flashing tests: bootloader, partition table and application at
their offsets, as MicroPython's ports/esp32/makeimg.py lays them out, with real binary partition
tables (encoded here, independently of iotcprov.board.partitions, as ESP-IDF's gen_esp32part.py
writes them: 32-byte entries, the MD5 entry, 0xFF up to 0xC00 bytes).

The tables restate MicroPython's ports/esp32/partitions-*.csv (offsets and sizes are facts).
"""

import hashlib
import os
import struct
from collections.abc import Callable
from pathlib import Path

APP, DATA = 0x00, 0x01
FACTORY, OTA_0, OTA_1 = 0x00, 0x10, 0x11
OTADATA, PHY, NVS, FAT = 0x00, 0x01, 0x02, 0x81

Row = tuple[str, int, int, int, int]  # label, type, subtype, offset, size

_HEAD: list[Row] = [("nvs", DATA, NVS, 0x9000, 0x6000), ("phy_init", DATA, PHY, 0xF000, 0x1000)]
_FACTORY: Row = ("factory", APP, FACTORY, 0x10000, 0x1F0000)
# v1.23-v1.25 partitions-4MiB.csv: generic ESP32 and C3, whatever the module's flash size.
GENERIC_4MIB: list[Row] = [*_HEAD, _FACTORY, ("vfs", DATA, FAT, 0x200000, 0x200000)]
# v1.23-v1.25 partitions-8MiB.csv: generic S3.
GENERIC_8MIB: list[Row] = [*_HEAD, _FACTORY, ("vfs", DATA, FAT, 0x200000, 0x600000)]
# v1.23-v1.25 partitions-16MiB.csv.
GENERIC_16MIB: list[Row] = [*_HEAD, _FACTORY, ("vfs", DATA, FAT, 0x200000, 0xE00000)]
# v1.26+ partitions-4MiBplus.csv: no vfs; the firmware adds one up to the end of flash.
PLUS_4MIB: list[Row] = [*_HEAD, _FACTORY]
# v1.26+ partitions-8MiBplus-ota.csv.
PLUS_8MIB_OTA: list[Row] = [
    ("nvs", DATA, NVS, 0x9000, 0x4000),
    ("otadata", DATA, OTADATA, 0xD000, 0x2000),
    ("phy_init", DATA, PHY, 0xF000, 0x1000),
    ("ota_0", APP, OTA_0, 0x10000, 0x270000),
    ("ota_1", APP, OTA_1, 0x280000, 0x270000),
]


def partition_table(rows: list[Row], md5: bool = True) -> bytes:
    """The binary table ESP-IDF flashes at 0x8000."""
    entries = b"".join(
        b"\xaa\x50"
        + struct.pack("<BBII", kind, subtype, offset, size)
        + label.encode().ljust(16, b"\0")
        + struct.pack("<I", 0)
        for label, kind, subtype, offset, size in rows
    )
    if md5:
        entries += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(entries).digest()
    return entries.ljust(0xC00, b"\xff")


def _esp_image(chip: str, payload: bytes) -> bytes:
    """An ESP image for `chip` (esptool's own writer) with `payload` as its one data segment."""
    import tempfile

    from esptool.bin_image import ImageSegment
    from esptool.targets import CHIP_DEFS

    image = CHIP_DEFS[chip].BOOTLOADER_IMAGE()
    image.entrypoint = 0x40080000
    segment = ImageSegment(0x3FFB0000, payload)
    segment.name = ".dram0.data"
    image.segments = [segment]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image.bin"
        image.save(str(path))
        return path.read_bytes()


def code_like(size: int) -> bytes:
    """Random bytes of 5 bits each: they compress as a MicroPython build does (to about 0.65 with
    zlib), so esptool sends them compressed, as it does a real firmware."""
    return bytes(byte & 0x1F for byte in os.urandom(size))


def make_micropython_bin(
    path: Path,
    rows: list[Row] | None,
    version: str | None = "v1.25.0",
    chip: str = "esp32",
    app_size: int = 6000,
    payload: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """A .bin as flashed at the chip's bootloader offset (0x1000 on ESP32, 0 on S3/C3): the
    partition table from `rows` at 0x8000 (none with rows=None), and an application at the first
    app partition whose data holds MicroPython's banner for `version` (none with version=None) and
    `payload(app_size)` (`code_like` for a firmware that compresses as a real one)."""
    start = 0x1000 if chip == "esp32" else 0x0
    banner = b"3.4.0; MicroPython %s on 2025-04-15\0" % version.encode() if version else b""
    image = bytearray(_esp_image(chip, os.urandom(2000)))
    if rows is not None:
        image = image.ljust(0x8000 - start, b"\xff") + partition_table(rows)
    app_offset = min((row[3] for row in rows or [] if row[1] == APP), default=0x10000)
    image = image.ljust(app_offset - start, b"\xff") + _esp_image(chip, banner + payload(app_size))
    path.write_bytes(image)
    return bytes(image)
