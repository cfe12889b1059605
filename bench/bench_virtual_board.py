"""Virtual board serial speed: a 64 KB `mpremote fs cp` and 64 KB of console output, throttled to
115200 baud and unthrottled.

At 115200 baud (8N1) a UART carries 11520 bytes/s, so 64 KB cannot take less than ~5.7 s; mpremote
sends the file as Python literals (several bytes per byte) in 256-byte chunks, so it takes longer.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import serial
from iotcprov.virtual_board import MicroPythonMissing, VirtualBoard

SIZE = 64 * 1024
FLOOR_S = SIZE / (115200 / 10)


def copy_seconds(baud: int, source: Path) -> float:
    with VirtualBoard(baud=baud) as board:
        started = time.monotonic()
        board.run_mpremote("fs", "cp", str(source), ":blob.bin", timeout=600)
        elapsed = time.monotonic() - started
        if (board.directory / "blob.bin").read_bytes() != source.read_bytes():
            raise SystemExit("copy differs")
        return elapsed


def console_seconds(baud: int) -> float:
    """Time for a client to receive SIZE bytes that the board prints as fast as it can."""
    with VirtualBoard(baud=baud) as board, serial.Serial(board.port, 115200, timeout=30) as port:
        board.run_mpremote("exec", "pass")  # settle in the raw REPL, then talk to it directly
        port.write(b"\r\x01")
        port.read_until(b"raw REPL; CTRL-B to exit\r\n>")
        port.write(f"import sys\nsys.stdout.write('x' * {SIZE})\n".encode() + b"\x04")
        port.read_until(b"OK")
        started = time.monotonic()
        received = len(port.read_until(b"x" * 64 + b"\x04"))
        elapsed = time.monotonic() - started
        port.write(b"\r\x02")
        if received < SIZE:
            raise SystemExit(f"only {received} of {SIZE} console bytes arrived")
        return elapsed


def main() -> int:
    try:
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "blob.bin"
            source.write_bytes(os.urandom(SIZE))
            print(f"64 KB console output at 115200 baud: {console_seconds(115200):6.2f} s  "
                  f"(physical floor {FLOOR_S:.2f} s)")
            print(f"64 KB console output unthrottled:    {console_seconds(0):6.2f} s")
            throttled = copy_seconds(115200, source)
            unthrottled = copy_seconds(0, source)
    except MicroPythonMissing as missing:
        print(f"skipped: {missing}")
        return 0
    print(f"mpremote fs cp 64 KB at 115200 baud: {throttled:6.2f} s  (target: >= {FLOOR_S:.2f} s)")
    speedup = throttled / unthrottled
    print(f"mpremote fs cp 64 KB unthrottled:    {unthrottled:6.2f} s  ({speedup:.1f}x faster)")
    return 0 if throttled >= FLOOR_S else 1


if __name__ == "__main__":
    sys.exit(main())
