"""What `--heap` means on the virtual board, and the checks on it.

`--heap N` is the Python heap an application gets, as on an ESP32 whose `network`, `umqtt.simple`,
`ntptime`, `machine`, `time` and `os` are built in or frozen in flash: right after boot,
`gc.collect(); gc.mem_free()` is N - BOOT_BASELINE. The unix port is started with N + RESERVE; the
shim loads every stand-in first and then pins what they leave beyond the application's share in
one bytearray, so the limit is real (MemoryError beyond it), not only reported.
"""

import re
import subprocess

from iotcprov.errors import InputError

# What the interpreter itself holds at boot, as a bare `micropython -X heapsize=N` (about 1.9 KB on
# the 64-bit unix port) or an ESP32 (sys.path, sys.modules, the mounted filesystem's buffers).
BOOT_BASELINE = 2 * 1024
# The board's own share on top of N: the stand-ins (about 25 KB) and what loading them needs while
# it lasts (little as .mpy, about 20 KB more when compiled from source), with room to spare.
RESERVE = 96 * 1024
# Below this mpremote's own helpers (raw-paste compile, fs cp/cat/ls, hashing) fail on the board.
MIN_HEAP = 16 * 1024
MAX_HEAP = 1024 * 1024 * 1024

_SIZE = re.compile(r"(\d+)(w?)([km]?)", re.IGNORECASE)
_WORD_BYTES = 8  # the unix port is 64-bit


def parse_heap(text: str | int) -> int:
    """`--heap` as bytes: 65536, 64K, 2M; `w` before the unit scales by the word size against a
    32-bit board (48wK = 96 KB here), as the unix port's `-X heapsize=` does."""
    match = _SIZE.fullmatch(str(text).strip())
    if not match:
        raise InputError(f"--heap: {str(text)!r} is not a heap size; give bytes or K/M, e.g. 64K")
    size = int(match[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[match[3].lower()]
    if match[2]:
        size = size * _WORD_BYTES // 4
    if size < MIN_HEAP:
        raise InputError(
            f"--heap: {text} is too small for the REPL and mpremote; give at least {MIN_HEAP // 1024}K"
        )
    if size > MAX_HEAP:
        raise InputError(f"--heap: {text} is more than the virtual board supports; give at most 1024M")
    return size


def unix_heapsize(heap: int) -> int:
    """The `-X heapsize=` the unix port is started with for an application heap of `heap` bytes."""
    return heap + RESERVE


def free_at_boot(heap: int) -> int:
    """`gc.mem_free()` after `gc.collect()` when boot.py starts, for an application heap of `heap`."""
    return heap - BOOT_BASELINE


def check_heap(micropython: str, text: str | int) -> int:
    """`--heap` in bytes, once the unix port has started with the heap it needs; else InputError."""
    heap = parse_heap(text)
    try:
        result = subprocess.run(
            [micropython, "-X", f"heapsize={unix_heapsize(heap)}", "-c", "pass"],
            capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InputError(f"--heap: could not try heap size {text!r} with {micropython}: {error}") from None
    if result.returncode != 0:
        raise InputError(f"--heap: MicroPython cannot start with a heap of {text}; give a smaller size")
    return heap
