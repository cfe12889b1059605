"""Following a board's console: its `iotc: <event> key=value ...` status lines and everything else.

Ends when a line matches `until`, when `timeout` seconds have passed, or when the caller stops.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from iotcprov.board import port_users
from iotcprov.errors import InputError, OperationError

STATUS_PREFIX = "iotc: "
SOFT_REBOOT = "soft reboot"  # "MPY: soft reboot", what MicroPython prints as it restarts
HOLD_LINES = 200  # a board that never says it: show what was held back after this many lines


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


@dataclass(frozen=True)
class StatusLine:
    event: str  # e.g. "dps assigned"
    fields: dict[str, str] = field(default_factory=dict)  # key=value pairs; free text under "reason"
    line: str = ""
    seconds: float = 0.0  # when it was seen, on the caller's clock (the demo's timeline)


def parse_status(line: str) -> StatusLine | None:
    """'iotc: dps assigned hub=h device=d' -> StatusLine('dps assigned', {'hub': 'h', 'device': 'd'})."""
    event = status_event(line)
    if event is None:
        return None
    rest = line[len(STATUS_PREFIX) + len(event) :].strip()
    fields: dict[str, str] = {}
    while rest:
        if rest.startswith("reason="):
            fields["reason"] = rest[len("reason=") :]
            break
        word, _, rest = rest.partition(" ")
        key, _, value = word.partition("=")
        fields[key] = value
        rest = rest.strip()
    return StatusLine(event, fields, line)


def compile_pattern(until: str | None) -> re.Pattern | None:
    if until is None:
        return None
    try:
        return re.compile(until)
    except re.error as error:
        raise InputError(f"--until: {until!r} is not a regular expression ({error})") from None


def _open_error(port: str, error: BaseException) -> InputError:
    if port_users.busy(port) or port_users.users(port):
        return InputError(port_users.in_use_message(port))
    return InputError(f"--port: cannot open {port!r} ({error}); check the cable or the port name")


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
    # exclusive: a provision or deploy started meanwhile is told the port is in use, instead of
    # both reading half of what the board says
    try:
        link = serial.serial_for_url(port, baudrate=115200, timeout=0.2, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as error:
        if not port_users.busy(port) or not port_users.wait_until_free(port):
            raise _open_error(port, error) from None
        try:  # the holder let go within the settling time
            link = serial.serial_for_url(port, baudrate=115200, timeout=0.2, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as again:
            raise _open_error(port, again) from None
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = b""
    count = 0
    # After --reset, what the board says before its soft reboot is the stopped program's
    # KeyboardInterrupt traceback and REPL prompts: held back, and dropped at `soft reboot`
    # (shown after all if the board never says it, so nothing real is lost).
    held: list[str] | None = [] if reset else None

    def show(line: str) -> MonitorResult | None:
        nonlocal count
        count += 1
        on_line(line)  # its own errors (a closed stdout) are not the connection's
        if pattern is not None and pattern.search(line):
            return MonitorResult(line, count, False)
        return None

    try:
        if reset:
            link.write(b"\r\x03\x03\x02")  # stop a program, leave a raw REPL
            link.write(b"\x04")  # soft reset: boot.py, then main.py
        while deadline is None or time.monotonic() < deadline:
            try:
                pending += link.read(max(1, link.in_waiting))
            except (serial.SerialException, OSError) as error:
                raise OperationError(f"--port {port}: the connection ended ({error})") from None
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if held is not None:
                    if SOFT_REBOOT not in line and len(held) < HOLD_LINES:
                        held.append(line)
                        continue
                    backlog, held = ([] if SOFT_REBOOT in line else held), None
                    for earlier in backlog:
                        if done := show(earlier):
                            return done
                if done := show(line):
                    return done
        for earlier in held or []:  # timed out before the board rebooted
            if done := show(earlier):
                return done
    finally:
        link.close()
    return MonitorResult(None, count, True)
