"""Shared helpers for the firmware tests: where the firmware is, and running MicroPython."""

import json
import os
import subprocess
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"


def find_micropython() -> str:
    """The unix port as the virtual board finds it ($IOTCPROV_MICROPYTHON, beside this Python, on
    PATH). Raises MicroPythonMissing where there is none: tests/conftest.py turns that into the
    same one-line skip for every test that needs it."""
    from iotcprov.virtual_board.micropython import find_micropython as find

    return find()


def run_micropython(micropython: str, script: str, heap: str | None = None, timeout: float = 60) -> str:
    """Run `script` on the unix port with the firmware's iotc package importable; its stdout."""
    args = [micropython]
    if heap:
        args += ["-X", f"heapsize={heap}"]
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE_DIR}:.frozen")
    result = subprocess.run(
        [*args, "-c", script], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"micropython failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def last_json(output: str):
    return json.loads(output.strip().splitlines()[-1])
