"""A wheel install carries the stand-ins, which the unix port runs from the installed package."""

import subprocess
import sys
import zipfile
from pathlib import Path

from iotcprov.virtual_board.supervisor import SHIM, STANDINS_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_the_standins(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("iotcprov-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"iotcprov/virtual_board/standins/{path.relative_to(STANDINS_DIR).as_posix()}"
        for path in STANDINS_DIR.rglob("*.py")
    }
    assert "iotcprov/virtual_board/standins/umqtt/simple.py" in expected
    assert expected <= names
    assert SHIM.is_file()
