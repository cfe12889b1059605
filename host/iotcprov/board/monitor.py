"""Following a board's console: its `iotc: <event> key=value ...` status lines and everything else.

Ends when a line matches `until`, when `timeout` seconds have passed, or when the caller stops.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from iotcprov.errors import InputError, OperationError

STATUS_PREFIX = "iotc: "


@dataclass(frozen=True)
class MonitorResult:
    matched: str | None  # the line that matched `until`
    lines: int
    timed_out: bool


def status_event(line: str) -> str | None:
    """'iotc: dps assigned hub=h' -> 'dps assigned'; None for other lines."""
    if not line.startswith(STATUS_PREFIX):
        return None
    words = []
    for word in line[len(STATUS_PREFIX) :].split():
        if "=" in word:
            break
        words.append(word)
    return " ".join(words)


def compile_pattern(until: str | None) -> re.Pattern | None:
    if until is None:
        return None
    try:
        return re.compile(until)
    except re.error as error:
        raise InputError(f"--until: {until!r} is not a regular expression ({error})") from None


def monitor(
    port: str,
    on_line: Callable[[str], None],
    *,
    until: str | None = None,
    timeout: float | None = None,
    reset: bool = False,
) -> MonitorResult:
    """Stream lines from `port` to `on_line`. With `reset`, soft-reset the board first so its
    main.py starts (Ctrl-C, then Ctrl-D at the friendly REPL)."""
    pattern = compile_pattern(until)
    if timeout is not None and timeout <= 0:
        raise InputError(f"--timeout: {timeout} is not a positive number of seconds")
    try:
        link = serial.serial_for_url(port, baudrate=115200, timeout=0.2)
    except (serial.SerialException, OSError, ValueError) as error:
        raise InputError(
            f"--port: cannot open {port!r} ({error}); check the cable or the port name"
        ) from None
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = b""
    count = 0
    try:
        if reset:
            link.write(b"\r\x03\x03\x02")  # stop a program, leave a raw REPL
            link.write(b"\x04")  # soft reset: boot.py, then main.py
        while deadline is None or time.monotonic() < deadline:
            pending += link.read(max(1, link.in_waiting))
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                count += 1
                on_line(line)
                if pattern is not None and pattern.search(line):
                    return MonitorResult(line, count, False)
    except (serial.SerialException, OSError) as error:
        raise OperationError(f"--port {port}: the connection ended ({error})") from None
    finally:
        link.close()
    return MonitorResult(None, count, True)
