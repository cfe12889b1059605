"""ESP-IDF binary partition tables (iotcprov.board.partitions) against tables encoded as
gen_esp32part.py writes them (tests/board/firmware_images.py)."""

import pytest
from iotcprov.board.partitions import (
    TYPE_APP,
    TYPE_DATA,
    PartitionTableError,
    end_of_partitions,
    find_data_partition,
    parse_partition_table,
)

from tests.board.firmware_images import FAT, GENERIC_4MIB, PLUS_8MIB_OTA, partition_table


def test_the_table_reads_back_as_written():
    parts = parse_partition_table(partition_table(GENERIC_4MIB) + b"\x00" * 64)
    assert [(p.label, p.type, p.offset, p.size) for p in parts] == [
        ("nvs", TYPE_DATA, 0x9000, 0x6000),
        ("phy_init", TYPE_DATA, 0xF000, 0x1000),
        ("factory", TYPE_APP, 0x10000, 0x1F0000),
        ("vfs", TYPE_DATA, 0x200000, 0x200000),
    ]
    assert find_data_partition(parts, "vfs").subtype == FAT
    assert find_data_partition(parts, "factory") is None  # an app, not data
    assert len(parse_partition_table(partition_table(GENERIC_4MIB, md5=False))) == 4


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        (b"\xff" * 0xC00, "no entries there"),
        (b"", "no entries there"),
        (b"\x00" * 0xC00, "no AA 50 entry"),
        (partition_table(GENERIC_4MIB)[:32] + b"\x12\x34" + b"\x00" * 30, "entry 1 does not start"),
        (bytearray(partition_table(GENERIC_4MIB)), "MD5"),
    ],
)
def test_a_damaged_table_is_refused(table, reason):
    if isinstance(table, bytearray):
        table[100] ^= 1  # one bit of the vfs entry: the MD5 entry no longer matches
    with pytest.raises(PartitionTableError, match=reason):
        parse_partition_table(bytes(table))


def test_the_last_partition_ends_where_v126_starts_its_vfs():
    assert end_of_partitions(parse_partition_table(partition_table(PLUS_8MIB_OTA))) == 0x4F0000
