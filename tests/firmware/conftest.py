"""Firmware tests: the pure core imports on CPython from firmware/ (as `iotc`)."""

import os
import sys

import pytest
from fw_rig import FIRMWARE_DIR, find_micropython
from iotcprov.virtual_board.releases import NEWEST, OLDEST, RELEASE_ENV

if str(FIRMWARE_DIR) not in sys.path:
    sys.path.insert(0, str(FIRMWARE_DIR))


@pytest.fixture(scope="session")
def micropython() -> str:
    return find_micropython()  # skipped, saying why, where it is missing (tests/conftest.py)


# The releases the end-to-end suites run on: the oldest and the newest the field has
# (docs/compatibility.md). A module opts in with `pytestmark = pytest.mark.usefixtures("release")`
# and lets its emulator fixture take `release` too: each release then gets its own emulator (the
# tests reuse device and group names) and every virtual board started meanwhile claims it.
E2E_RELEASES = (OLDEST, NEWEST)


@pytest.fixture(scope="module", params=E2E_RELEASES, ids=lambda release: "v" + release)
def release(request):
    previous = os.environ.get(RELEASE_ENV)
    os.environ[RELEASE_ENV] = request.param
    yield request.param
    if previous is None:
        os.environ.pop(RELEASE_ENV, None)
    else:
        os.environ[RELEASE_ENV] = previous
