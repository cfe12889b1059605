"""Firmware tests: the pure core imports on CPython from firmware/ (as `iotc`)."""

import sys

import pytest
from fw_rig import FIRMWARE_DIR, MISSING_MICROPYTHON, find_micropython

if str(FIRMWARE_DIR) not in sys.path:
    sys.path.insert(0, str(FIRMWARE_DIR))


@pytest.fixture(scope="session")
def micropython() -> str:
    path = find_micropython()
    if path is None:
        pytest.skip(MISSING_MICROPYTHON)
    return path
