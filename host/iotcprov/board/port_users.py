"""Whether another program has a serial port open, and which, for errors that say so instead of
blaming the cable or the firmware.

Two ways, both portable in what they return: `busy(port)` opens the port with an exclusive lock
(as mpremote and `monitor` do) and reads the refusal (a lock held elsewhere; on Windows the
port's "access denied"); `users(port)` names the processes holding it open where the OS tells
(Linux: the /proc/PID/fd links; elsewhere nothing). Only a process name and ID are shown, never
a command line, which may carry a key.
"""

import errno
import os
import re
import time
from pathlib import Path

import serial

__all__ = ["busy", "describe_users", "in_use_message", "users", "wait_until_free"]

# How long a port held by someone else may take to come free before it counts as in use: a
# program just closing it, Linux's ModemManager probing a port that just appeared (a few seconds at
# most), a child process between fork and exec still holding the parent's descriptor and its lock.
SETTLE_SECONDS = 2.0

_PTY_SLAVE = re.compile(r"/dev/pts/(\d+)")
_PTY_MASTERS = ("/dev/ptmx", "/dev/pts/ptmx")


def busy(port: str) -> bool:
    """True when opening `port` is refused because someone else holds it."""
    try:
        link = serial.serial_for_url(port, exclusive=True, timeout=0)
    except (serial.SerialException, OSError) as error:
        code = getattr(error, "errno", None)
        if "exclusively lock" in str(error) or code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY):
            return True
        return os.name == "nt" and (code == errno.EACCES or "Access is denied" in str(error))
    except ValueError:
        return False
    link.close()
    return False


def wait_until_free(port: str, seconds: float = SETTLE_SECONDS) -> bool:
    """Poll `busy(port)` for up to `seconds`: True as soon as nobody holds it, False if still held."""
    deadline = time.monotonic() + seconds
    while busy(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)  # polling: the OS offers no notice when another process lets a port go
    return True


def _pty_index(pid: str, fd: str) -> int | None:
    """The pty number a /dev/ptmx descriptor is the master of (Linux fdinfo `tty-index`)."""
    try:
        text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
    except OSError:
        return None
    found = re.search(r"^tty-index:\s*(\d+)", text, re.MULTILINE)
    return int(found[1]) if found else None


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or "?"
    except OSError:
        return "?"


def users(port: str) -> list[tuple[int, str]]:
    """(PID, process name) of the other processes that have `port` open; [] where the OS does not
    say (no /proc) or does not let us look. The process holding a pty's master side (e.g. the
    virtual board serving the port) owns the port rather than uses it, and is left out."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    target = os.path.realpath(port)
    pty = _PTY_SLAVE.fullmatch(target)
    pty_number = int(pty[1]) if pty else None
    holders, owners = set(), set()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link == target:
                holders.add(int(entry.name))
            is_master = link in _PTY_MASTERS and pty_number is not None
            if is_master and _pty_index(entry.name, fd.name) == pty_number:
                owners.add(int(entry.name))
    return [(pid, _name(pid)) for pid in sorted(holders - owners)]


def describe_users(found: list[tuple[int, str]]) -> str:
    if not found:
        return "another program"
    named = ", ".join(f"PID {pid} ({name})" for pid, name in found[:3])
    return named + (" and others" if len(found) > 3 else "")


def in_use_message(port: str, found: list[tuple[int, str]] | None = None) -> str:
    """One line for the error: the port, who has it, and the fix."""
    who = describe_users(users(port) if found is None else found)
    return (
        f"--port: {port!r} is in use by {who}; close that program (an open `iotcprov monitor`, "
        "mpremote, a serial terminal) and retry"
    )
