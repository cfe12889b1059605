"""Where MicroPython on ESP32 will mount its filesystem, read from the firmware image to be flashed.

What the firmware does (MicroPython ports/esp32, v1.23.0 to v1.28.0):
- `modules/flashbdev.py` takes the data partition labelled "vfs", else the one labelled "ffat"
  (TinyUF2's layout, 512-byte blocks, formatted as FAT by `inisetup.py`), and `_boot.py` mounts it.
- Up to v1.25 the partition table inside the firmware decides alone: the generic ESP32 and C3
  builds carry `partitions-4MiB.csv` (vfs 0x200000 + 0x200000) even on 8 or 16 MB modules.
- From v1.26.0 (commit 2a0e2b5782, v1.26.0-preview.229) `main.c` reads the physical flash size
  (`esp_flash_get_physical_size`) and, when the table has neither "vfs" nor "ffat", registers a
  "vfs" partition from the end of the last partition to the end of flash; the generic tables
  (`partitions-4MiBplus.csv` ...) no longer have one.

LittleFS refuses to mount an image whose block count differs from the partition's, so the image
must be exactly this size. The version is read from the banner string every build holds
(`MICROPY_BANNER_NAME_AND_VERSION`, py/mpconfig.h, also in `sys.version`): MicroPython builds
leave the app descriptor's version empty (`CONFIG_APP_EXCLUDE_PROJECT_VER_VAR=y`).
"""

import re
from dataclasses import dataclass

from iotcprov.board.partitions import (
    Partition,
    PartitionTableError,
    end_of_partitions,
    find_data_partition,
    parse_offset,
    parse_partition_table,
)
from iotcprov.errors import InputError

AUTO_VFS_SINCE = (1, 26, 0)
AUTO_VFS_PREVIEW = 229  # v1.26.0-preview.229 is the commit that added it
_BANNER = re.compile(
    rb"MicroPython (?:\(with v2\.0 preview\) )?(v\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?) on \d{4}-\d\d-\d\d"
)
_MB = 1024 * 1024


@dataclass(frozen=True)
class FilesystemRegion:
    """The flash range MicroPython mounts as its filesystem, and how that was decided."""

    offset: int
    size: int
    source: str

    def as_dict(self) -> dict:
        return {"offset": hex(self.offset), "size": self.size, "source": self.source}


@dataclass(frozen=True)
class VfsPlan:
    """The filesystem as the firmware defines it, before the flash size is known:
    a partition of fixed size, or (v1.26+) from `offset` to the end of the physical flash."""

    offset: int
    size: int | None  # None: to the end of flash
    source: str

    def region(self, flash_size: int, flash_size_from: str) -> FilesystemRegion:
        """The region on a flash of `flash_size` bytes; `flash_size_from` names where that size
        came from ("--flash-size", "the chip"), for the error when the filesystem does not fit."""
        end = self.offset + self.size if self.size is not None else flash_size
        if end > flash_size or end <= self.offset:
            needed = f"ends at {_sized(end)}" if self.size is not None else "has no room"
            fix = (
                "give the board's real flash size"
                if flash_size_from == "--flash-size"
                else "flash the MicroPython build made for this flash size (or give --flash-size if "
                "the chip misreports it)"
            )
            raise InputError(
                f"--firmware: {self.source} {needed}, but the flash is {_sized(flash_size)} "
                f"(from {flash_size_from}); {fix}"
            )
        return FilesystemRegion(self.offset, end - self.offset, self.source)


def plan_filesystem(firmware: bytes, profile: dict, field: str = "--firmware") -> VfsPlan:
    """Read the partition table (and, when it has no filesystem partition, the MicroPython
    version) inside `firmware`, a .bin flashed at the profile's firmware_offset."""
    partitions = _partition_table(firmware, profile, field)
    vfs = find_data_partition(partitions, "vfs")
    if vfs is not None:
        return VfsPlan(vfs.offset, vfs.size, f"the firmware's 'vfs' partition {_span(vfs)}")
    ffat = find_data_partition(partitions, "ffat")
    if ffat is not None:
        raise InputError(
            f"{field}: its filesystem partition is 'ffat' {_span(ffat)}, which MicroPython formats "
            "as FAT with 512-byte blocks, not the LittleFS image --fs writes; flash without --fs "
            "and run `iotcprov deploy` once the board has booted"
        )
    version = micropython_version(firmware)
    auto = auto_vfs(version) if version else None
    if auto is None:
        found = f"MicroPython {version}" if version else "no MicroPython version string"
        raise InputError(
            f"{field}: its partition table has no 'vfs' partition and the file holds {found}, so "
            "where the filesystem goes is unknown (v1.26+ puts it after the last partition, older "
            "releases mount none); flash a MicroPython release .bin, or flash without --fs"
        )
    if not auto:
        raise InputError(
            f"{field}: its partition table has no 'vfs' partition, and MicroPython {version} then "
            "mounts no filesystem; flash a build whose table has one (or v1.26+), or flash without --fs"
        )
    start = end_of_partitions(partitions)
    return VfsPlan(start, None, f"MicroPython {version}'s 'vfs' ({start:#x} to the end of flash)")


def micropython_version(firmware: bytes) -> str | None:
    """'v1.26.1' (as the build names itself) from the banner in the image, or None."""
    found = {match.group(1) for match in _BANNER.finditer(firmware)}
    return found.pop().decode() if len(found) == 1 else None  # none, or several: cannot tell


def auto_vfs(version: str) -> bool | None:
    """Whether that MicroPython creates "vfs" up to the end of flash when the table has none;
    None when the version cannot say (a v1.26.0 preview without its commit count)."""
    match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)(?:-(.*))?", version)
    if match is None:
        return None
    release = (int(match[1]), int(match[2]), int(match[3]))
    prerelease = match[4] or ""
    if release != AUTO_VFS_SINCE or not prerelease.startswith("preview"):
        return release >= AUTO_VFS_SINCE  # a release, or commits after one (v1.26.1-12.gabc)
    count = prerelease.split(".")[1] if "." in prerelease else ""
    return int(count) >= AUTO_VFS_PREVIEW if count.isdigit() else None


def _partition_table(firmware: bytes, profile: dict, field: str) -> tuple[Partition, ...]:
    # The .bin starts at the bootloader offset, so the table at 0x8000 in flash is earlier in the file.
    table_at = parse_offset(profile["partition_table_offset"]) - parse_offset(profile["firmware_offset"])
    try:
        return parse_partition_table(firmware[table_at:])
    except PartitionTableError as error:
        raise InputError(
            f"{field}: no usable ESP-IDF partition table at {table_at:#x} in the file ({error}); "
            "--fs sizes the filesystem from it, so give the MicroPython .bin that holds bootloader, "
            f"partition table and application (the one flashed at {profile['firmware_offset']})"
        ) from None


def _span(partition: Partition) -> str:
    return f"({partition.offset:#x} + {partition.size:#x})"


def _sized(size: int) -> str:
    return f"{size // _MB} MB" if size % _MB == 0 else f"{size:#x} bytes"
