"""Every test that needs the MicroPython unix port skips alike where it is missing (Python 3.14,
macOS, Windows, or IOTCPROV_MICROPYTHON pointing nowhere): one line, the finder's own reason.

In-process users (VirtualBoard, the firmware rigs) raise MicroPythonMissing, turned into that
skip here whatever fixture or helper raised it; a test that runs the unix port only in a child
process says so with `@pytest.mark.micropython`.
"""

import pytest
from iotcprov.virtual_board.micropython import MicroPythonMissing, find_micropython


def _missing() -> str | None:
    try:
        find_micropython()
    except MicroPythonMissing as missing:
        return str(missing)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    if item.get_closest_marker("micropython") is not None:
        reason = _missing()
        if reason is not None:
            pytest.skip(reason)
    try:
        return (yield)
    except MicroPythonMissing as missing:
        pytest.skip(str(missing))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except MicroPythonMissing as missing:
        pytest.skip(str(missing))
