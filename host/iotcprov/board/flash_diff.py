"""Writing only what differs: before `flash` writes a region, the flash's MD5 (computed by
esptool's stub on the chip, `flash_md5sum`) is compared with the data's, first for the whole
region, then per 64 KB, then per 4 KB sector; only differing sectors are written. A board that
already holds this MicroPython and filesystem receives nothing; a changed identity in a LittleFS
image costs the few sectors it touches.

When more than half of a region differs, the whole region is written instead: one compressed
write is cheaper than many small ones plus their MD5 round trips.
"""

import hashlib
from collections.abc import Callable

SECTOR = 4096  # the flash erase unit: esptool erases and writes whole sectors
COARSE = 64 * 1024
WHOLE_ABOVE = 0.5  # above this share of a region differing, write it whole

Span = tuple[int, bytes]  # (flash offset, data)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def changed_spans(flash_md5: Callable[[int, int], str], offset: int, data: bytes) -> list[Span]:
    """The parts of `data`, meant for flash at `offset` (sector-aligned), that the flash does not
    already hold: [(offset, bytes)], adjacent sectors merged. `flash_md5(offset, length)` is the hex
    MD5 of the flash there (esptool's `esp.flash_md5sum`)."""
    if not data or flash_md5(offset, len(data)) == _md5(data):
        return []
    sectors: list[int] = []  # start of each differing sector, relative to offset
    for coarse in range(0, len(data), COARSE):
        piece = data[coarse : coarse + COARSE]
        if len(data) > COARSE and flash_md5(offset + coarse, len(piece)) == _md5(piece):
            continue
        for start in range(coarse, coarse + len(piece), SECTOR):
            sector = data[start : start + SECTOR]
            if flash_md5(offset + start, len(sector)) != _md5(sector):
                sectors.append(start)
    if len(sectors) * SECTOR > WHOLE_ABOVE * len(data):
        return [(offset, data)]
    spans: list[tuple[int, int]] = []  # (start, end) relative to offset
    for start in sectors:
        end = min(start + SECTOR, len(data))
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return [(offset + start, data[start:end]) for start, end in spans]
