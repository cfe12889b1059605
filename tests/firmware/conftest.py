"""Firmware tests: the pure core imports on CPython from firmware/ (as `iotc`)."""

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
# (docs/compatibility.md). A module opts in with `pytestmark = pytest.mark.usefixtures("release")`;
# every virtual board its tests start then claims that release. Module-scoped, so a module runs
# all its tests on one release, then all on the other, and a module-scoped emulator that depends
# on `release` is a fresh one for each: the tests create enrollments and groups by fixed names,
# which the second release's run could not create again on the same emulator.
E2E_RELEASES = (OLDEST, NEWEST)


@pytest.fixture(scope="module", params=E2E_RELEASES, ids=lambda release: "v" + release)
def release(request):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv(RELEASE_ENV, request.param)
        yield request.param


@pytest.fixture(scope="module")
def emu(tmp_path_factory, release):
    """An emulator per end-to-end module and release: the tests reuse device and group names, and
    some count TLS handshakes emulator-wide."""
    from iotcprov.emulator import Emulator

    with Emulator.running(tmp_path_factory.mktemp("emulator")) as emulator:
        yield emulator
