"""Fixtures for emulator tests: a real emulator process on random loopback addresses at port 8883.

Microsoft's SDK always connects to port 8883, so DPS and hub each get their own random 127.x.y.z
address; concurrent test runs on this machine pick different ones (a clash is retried).
"""

from __future__ import annotations

import random

import pytest
from iotcprov.emulator import Emulator
from iotcprov.errors import OperationError

SDK_PORT = 8883


def random_loopback() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def start_on_8883(data_dir, attempts: int = 8, **kwargs) -> Emulator:
    for attempt in range(attempts):
        dps, hub = random_loopback(), random_loopback()
        if dps == hub:
            continue
        try:
            return Emulator.start(
                data_dir / f"run{attempt}" if attempt else data_dir,
                dps=f"{dps}:{SDK_PORT}",
                hub=f"{hub}:{SDK_PORT}",
                **kwargs,
            )
        except OperationError as error:
            if "in use" not in str(error):
                raise
    raise RuntimeError("no free loopback address for port 8883")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    emu = start_on_8883(tmp_path_factory.mktemp("emulator"))
    yield emu
    emu.stop()
