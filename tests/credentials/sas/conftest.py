"""Fixtures for the SAS tests; the machinery is in sas_rig.py."""

import pytest
from sas_rig import MicroPythonSas, find_micropython, run_script


@pytest.fixture(scope="session")
def micropython() -> str:
    return find_micropython()  # skipped, saying why, where it is missing (tests/conftest.py)


@pytest.fixture
def run_micropython(micropython):
    """run_micropython(script) -> the JSON the script printed last, run on the unix port."""
    return lambda script, timeout=30: run_script(micropython, script, timeout)


@pytest.fixture(scope="module")
def micropython_sas(micropython):
    """One MicroPython process answering SAS requests for the whole module."""
    server = MicroPythonSas(micropython)
    yield server
    server.close()
