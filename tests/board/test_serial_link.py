"""The throttled serial line in front of the emulated ROM loader (tests/board/serial_link.py), driven
by the real esptool command line: it follows esptool's --baud speed switch, stays at 115200 when
asked to, and a line that cannot hold a rate makes esptool fail as a real one would."""

import os
import subprocess
import sys

from tests.board.conftest import make_esp_image

FIRMWARE_OFFSET = 0x1000


def esptool(link, tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", link.url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )


def test_follows_the_speed_switch(serial_line, rom_loader, tmp_path):
    image = make_esp_image(tmp_path / "app.bin", payload_size=8000)
    link = serial_line(115200)
    result = esptool(
        link, tmp_path, "--baud", "460800", "write-flash", hex(FIRMWARE_OFFSET), str(tmp_path / "app.bin")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert link.bauds == [115200, 460800]
    assert rom_loader.read_flash(FIRMWARE_OFFSET, len(image)) == image


def test_stays_at_the_rom_speed(serial_line, tmp_path):
    link = serial_line(115200)
    result = esptool(link, tmp_path, "--baud", "115200", "flash-id")
    assert result.returncode == 0, result.stdout + result.stderr
    assert link.bauds == [115200]


def test_a_line_that_cannot_hold_the_rate_fails(serial_line, tmp_path):
    link = serial_line(115200, reliable_up_to=460800)
    result = esptool(link, tmp_path, "--baud", "921600", "flash-id")
    assert result.returncode != 0
    assert link.bauds == [115200, 921600]
