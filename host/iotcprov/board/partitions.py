"""ESP-IDF partition tables in their binary form (as flashed at 0x8000): parsing only, no I/O.

A table is a run of 32-byte entries: magic AA 50, type u8, subtype u8, offset u32 LE, size u32 LE,
label 16 bytes NUL-padded, flags u32 LE. gen_esp32part.py (ESP-IDF) appends an entry starting
EB EB (14 more 0xFF bytes, then the MD5 of every entry before it) and fills the rest of the
0xC00-byte table with 0xFF, so 0xFF ends it. The bootloader refuses a table whose MD5 does not match.
"""

import hashlib
import struct
from dataclasses import dataclass

TABLE_LENGTH = 0xC00  # the table's flash sector share: at most 95 entries and the MD5 entry
ENTRY = struct.Struct("<2sBBII16sI")
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
TYPE_APP = 0x00
TYPE_DATA = 0x01


class PartitionTableError(ValueError):
    """The bytes are not a partition table the ESP-IDF bootloader would accept."""


@dataclass(frozen=True)
class Partition:
    type: int
    subtype: int
    offset: int
    size: int
    label: str
    flags: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.size

    def describe(self) -> str:
        return f"{self.label!r} ({self.offset:#x} + {self.size:#x})"


def parse_partition_table(data: bytes) -> tuple[Partition, ...]:
    """The partitions of a binary table (`data` starts at the table; bytes after it are ignored)."""
    partitions: list[Partition] = []
    for start in range(0, TABLE_LENGTH, ENTRY.size):
        entry = data[start : start + ENTRY.size]
        if len(entry) < ENTRY.size or entry == b"\xff" * ENTRY.size:
            break
        if entry[:2] == MD5_MAGIC:
            if entry[16:] != hashlib.md5(data[:start]).digest():
                raise PartitionTableError("its MD5 entry does not match the entries (damaged table)")
            break
        magic, kind, subtype, offset, size, label, flags = ENTRY.unpack(entry)
        if magic != ENTRY_MAGIC:
            if not partitions:
                raise PartitionTableError("no AA 50 entry where the table should start")
            raise PartitionTableError(f"entry {len(partitions)} does not start with AA 50 (damaged table)")
        name = label.split(b"\0", 1)[0].decode("ascii", "replace")
        partitions.append(Partition(kind, subtype, offset, size, name, flags))
    if not partitions:
        raise PartitionTableError("no entries there: only 0xFF bytes, or the file ends before it")
    return tuple(partitions)


def parse_offset(value: str | int) -> int:
    """An offset as board profiles write it ("0x8000") or as a number."""
    return value if isinstance(value, int) else int(value, 0)


def find_data_partition(partitions: tuple[Partition, ...], label: str) -> Partition | None:
    """The first data partition labelled exactly `label`, whatever its subtype (as
    esp_partition_find_first(DATA, ANY, label) and MicroPython's esp32.Partition.find look it up)."""
    for partition in partitions:
        if partition.type == TYPE_DATA and partition.label == label:
            return partition
    return None


def end_of_partitions(partitions: tuple[Partition, ...]) -> int:
    """Where the last partition in flash ends."""
    return max(partition.end for partition in partitions)
