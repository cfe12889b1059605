"""Fixtures for board-operation tests: virtual boards, the emulated ESP32 ROM loader, inputs."""

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

GROUP_KEY = base64.b64encode(bytes(range(64))).decode()
ID_SCOPE = "0ne00ABCDEF"


@pytest.fixture
def make_board(tmp_path):
    """Start a virtual board (keyword arguments as VirtualBoard); stopped at the end of the test."""
    virtual_board = pytest.importorskip("iotcprov.virtual_board")
    boards = []

    def start(**kwargs):
        index = len(boards)
        kwargs.setdefault("directory", tmp_path / f"board-{index}")
        kwargs.setdefault("state_directory", tmp_path / f"state-{index}")
        Path(kwargs["directory"]).mkdir(exist_ok=True)
        try:
            board = virtual_board.VirtualBoard(**kwargs)
        except virtual_board.MicroPythonMissing as missing:
            pytest.skip(str(missing))
        boards.append(board)
        return board.start()

    yield start
    for board in boards:
        board.stop()


@pytest.fixture
def board(make_board):
    return make_board()


def board_files(root: Path) -> dict[str, bytes]:
    """Every file on a virtual board, by board path."""
    return {
        "/" + p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IOTCPROV_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "iotcprov", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        stdin=subprocess.DEVNULL,
    )


# --- the emulated ESP32 ROM loader -------------------------------------------------------------------


class RomLoader:
    """esp32-mock-bootloader in its own process and TMPDIR, on a free local port."""

    def __init__(self, tmp: Path, chip: str = "esp32") -> None:
        pytest.importorskip("esp32_mock_bootloader")
        self.tmp = tmp
        self.chip = chip
        tmp.mkdir(parents=True, exist_ok=True)
        port_file = tmp / "port"
        self._log = open(tmp / "mock.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "esp32_mock_bootloader.cli",
                "run",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--chip",
                chip,
                "--timeout",
                "300",
            ],
            env={**os.environ, "TMPDIR": str(tmp)},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("esp32-mock-bootloader did not start: " + (tmp / "mock.log").read_text())
            time.sleep(0.05)  # polling a file another process writes; there is no event to wait on
        self.address = ("127.0.0.1", int(port_file.read_text().strip()))
        self.url = f"socket://127.0.0.1:{self.address[1]}"

    def esptool(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "esptool", "--chip", self.chip, "--port", self.url, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TMPDIR": str(self.tmp)},
        )

    def read_flash(self, offset: int, length: int) -> bytes:
        """Read back through the ROM routine (the mock's stub read is unreliable)."""
        out = self.tmp / f"read-{offset:x}-{length:x}.bin"
        result = self.esptool("--no-stub", "read-flash", hex(offset), str(length), str(out))
        assert result.returncode == 0, result.stdout + result.stderr
        return out.read_bytes()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def rom_loader(tmp_path):
    loader = RomLoader(tmp_path / "rom")
    yield loader
    loader.stop()


@pytest.fixture
def serial_line(rom_loader):
    """serial_line(baud=115200, reliable_up_to=None): the ROM loader behind a serial line of that
    speed (tests/board/serial_link.py), which follows esptool's CHANGE_BAUDRATE."""
    from tests.board.serial_link import SerialLink

    links = []

    def start(baud: int = 115200, reliable_up_to: int | None = None) -> SerialLink:
        links.append(SerialLink(rom_loader.address, baud, reliable_up_to))
        return links[-1]

    yield start
    for link in links:
        link.stop()


def make_esp_image(path: Path, payload_size: int = 6000, chip: str = "esp32") -> bytes:
    """A small, well-formed ESP application image (esptool's own writer) for flashing tests."""
    from esptool.bin_image import ESP32C3FirmwareImage, ESP32FirmwareImage, ImageSegment

    image = (ESP32C3FirmwareImage if chip == "esp32c3" else ESP32FirmwareImage)()
    image.entrypoint = 0x40080000
    segment = ImageSegment(0x3FFB0000, os.urandom(payload_size))
    segment.name = ".dram0.data"
    image.segments = [segment]
    image.save(str(path))
    return path.read_bytes()


def run_cli_on_terminal(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    """`iotcprov ARGS` with stderr on a terminal (a pty) and stdout a pipe, as `iotcprov ... | tee`
    at a shell: (exit code, stdout, what the terminal received)."""
    import pty

    environment = {k: v for k, v in os.environ.items() if not k.startswith("IOTCPROV_")}
    environment.update(TERM="xterm-256color", COLUMNS="100")
    environment.pop("NO_COLOR", None)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "iotcprov", *args], stdout=subprocess.PIPE, stderr=terminal,
        stdin=subprocess.DEVNULL, env=environment,
    )  # fmt: skip
    os.close(terminal)
    received = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        received += chunk
    os.close(controller)
    stdout = process.stdout.read().decode()
    process.stdout.close()
    return process.wait(timeout), stdout, received.decode("utf-8", "replace")
