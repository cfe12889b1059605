"""`flash` picks its speed through esptool's own API, against the emulated ROM loader behind a
throttled serial line (tests/board/serial_link.py): the switch from the ROM's 115200 really
happens, `--baud 115200` stays there, and a line that cannot hold a rate falls back."""

import pytest
from iotcprov import resources
from iotcprov.board import flash
from iotcprov.board.flash_baud import flash_rates, parse_baud
from iotcprov.errors import InputError

from tests.board.conftest import make_esp_image, run_cli

FW_OFFSET = 0x1000


def test_switches_to_the_profiles_fastest_speed(serial_line, rom_loader, tmp_path):
    image = make_esp_image(tmp_path / "fw.bin")
    link = serial_line(115200)
    result = flash.flash(link.url, image, "esp32")
    assert (result.baud, result.fallbacks) == (921600, ())
    assert link.bauds == [115200, 921600]
    assert rom_loader.read_flash(FW_OFFSET, len(image)) == image


def test_baud_115200_stays_at_the_rom_speed(serial_line, rom_loader, tmp_path):
    image = make_esp_image(tmp_path / "fw.bin")
    link = serial_line(115200)
    result = flash.flash(link.url, image, "esp32", baud=115200)
    assert result.baud == 115200
    assert link.bauds == [115200]
    assert rom_loader.read_flash(FW_OFFSET, len(image)) == image


def test_a_line_that_cannot_hold_the_speed_falls_back(serial_line, rom_loader, tmp_path):
    image = make_esp_image(tmp_path / "fw.bin")
    link = serial_line(115200, reliable_up_to=460800)
    result = flash.flash(link.url, image, "esp32")
    assert result.baud == 460800
    (fallback,) = result.fallbacks
    assert fallback.startswith("921600: ")
    assert link.bauds == [115200, 921600, 115200, 460800]  # a new session from the ROM speed
    assert rom_loader.read_flash(FW_OFFSET, len(image)) == image


@pytest.mark.smoke
def test_rates_tried_fastest_first():
    profile = resources.load_board_profile("esp32")
    assert flash_rates(profile) == [921600, 460800, 115200]
    assert flash_rates(profile, 460800) == [460800, 115200]
    assert flash_rates(profile, 115200) == [115200]
    assert flash_rates({**profile, "flash_baud": 230400}) == [230400, 115200]


@pytest.mark.smoke
def test_an_unknown_speed_is_refused_naming_the_option(tmp_path):
    with pytest.raises(InputError, match=r"^--baud: '9600' is not a flashing speed; choose one of 921600"):
        parse_baud("9600")
    make_esp_image(tmp_path / "fw.bin")
    result = run_cli(
        "flash", "--port", "socket://127.0.0.1:9", "--firmware", str(tmp_path / "fw.bin"), "--baud", "fast"
    )
    assert result.returncode == 2
    assert "--baud: 'fast' is not a flashing speed" in result.stderr
