"""Per-board seconds on a production line, over a serial line of a real speed: the emulated ESP32
ROM loader behind a throttled link (tests/board/serial_link.py: 10 bits per byte, following
esptool's CHANGE_BAUDRATE) for flashing, and the virtual board at 115200 baud (the MicroPython
REPL's speed) for deploy and provision. The firmware is a MicroPython v1.25-sized ESP32 build
(1.4 MB application, generic 4 MiB partition table) that compresses as a real one does.

(a) the obvious script: `esptool --baud B write-flash` + `mpremote fs cp -r` of the sources +
    `iotcprov provision`;
(b) `iotcprov flash --fs` with the identity: the whole board in one esptool session;
(c) (b) again on a board that already holds everything;
and deploy + provision at 115200 with and without compression (`deflate` on the board), as two
commands and in one session as `factory run` does.

Goals: (b) at 921600 >= 1.5x faster than (a); (c) at 921600 < 3 s; identity + firmware at
115200 with deflate < 2.5 s.

    python bench/bench_line.py [--bauds 115200,921600]
"""

import argparse
import base64
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test rigs: tests.board

from iotcprov import resources
from iotcprov.board import deploy, flash, provision
from iotcprov.board.connection import BoardSession, open_board
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.identity import IdentityBundle, IdentityRequest, build_identity
from iotcprov.board.trust import azure_roots

from tests.board.conftest import RomLoader
from tests.board.firmware_images import GENERIC_4MIB, code_like, make_micropython_bin
from tests.board.serial_link import SerialLink

REPL_BAUD = 115200
GROUP_KEY = base64.b64encode(bytes(range(64))).decode()
GOAL_ONE_PASS_RATIO = 1.5
GOAL_REFLASH_S = 3.0
GOAL_BOARD_S = 2.5


def identity() -> IdentityBundle:
    return build_identity(
        IdentityRequest("0ne00ABCDEF", "line-1", sas_from_group_key(GROUP_KEY, "line-1"), azure_roots())
    )


def _plain(port: str) -> BoardSession:
    """A session on which the board's `deflate` is hidden, as on a build without the module."""
    session = open_board(port)
    session.exec("deflate=None")
    session.facts(refresh=True)
    return session


def board_runs(bundle: IdentityBundle) -> dict[str, float]:
    from iotcprov.virtual_board import VirtualBoard

    firmware = resources.firmware_dir()
    figures = {}
    with VirtualBoard(baud=REPL_BAUD) as board:
        board.run_mpremote("fs", "mkdir", ":lib")
        started = time.monotonic()
        board.run_mpremote("fs", "cp", "-r", str(firmware / "iotc"), ":lib/", timeout=600)
        board.run_mpremote("fs", "cp", str(firmware / "main.py"), ":main.py")
        figures["mpremote cp"] = time.monotonic() - started
        figures["provision"] = provision.provision(board.port, bundle).seconds
    for label, connect in (("deflate", open_board), ("plain", _plain)):
        with VirtualBoard(baud=REPL_BAUD) as board:
            code = deploy.deploy(board.port, main=True, connect=connect)
            ident = provision.provision(board.port, bundle, connect=connect)
        figures[f"deploy {label}"] = code.seconds
        figures[f"provision {label}"] = ident.seconds
        figures[f"bytes {label}"] = code.bytes_sent + ident.bytes_sent
    # as `factory run` does: one session per board, bytecode without line numbers (its default),
    # and with them (--line-numbers)
    for label, lines in (("one session", False), ("one session, line numbers", True)):
        with VirtualBoard(baud=REPL_BAUD) as board:
            started = time.monotonic()
            with open_board(board.port) as session:
                deploy.deploy_session(session, main=True, line_numbers=lines)
                provision.write_identity(session, bundle)
                figures[f"bytes {label}"] = session.bytes_sent
            figures[label] = time.monotonic() - started
    return figures


def _esptool_write(url: str, baud: int, image: Path) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", url, "--baud", str(baud)]
        + ["write-flash", "0x1000", str(image)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode:
        raise RuntimeError(result.stdout + result.stderr)
    return time.monotonic() - started


def flash_runs(work: Path, image: Path, firmware: bytes, fs_files: dict, baud: int) -> dict[str, float]:
    figures = {}
    loader = RomLoader(work / f"rom-a-{baud}")
    try:
        with SerialLink(loader.address, REPL_BAUD) as link:
            figures["esptool"] = _esptool_write(link.url, baud, image)
    finally:
        loader.stop()
    loader = RomLoader(work / f"rom-b-{baud}")
    try:
        with SerialLink(loader.address, REPL_BAUD) as link:
            one_pass = flash.flash(link.url, firmware, "esp32", fs_files=fs_files, baud=baud)
            again = flash.flash(link.url, firmware, "esp32", fs_files=fs_files, baud=baud)
    finally:
        loader.stop()
    figures["one pass"] = one_pass.seconds
    figures["one pass bytes"] = one_pass.bytes_written
    figures["again"] = again.seconds
    figures["again bytes"] = again.bytes_written
    return figures


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bauds", default="115200,921600", help="flashing speeds, comma-separated")
    args = parser.parse_args()
    try:
        import esp32_mock_bootloader  # noqa: F401
    except ImportError:
        print("skipped: pip install esp32-mock-bootloader")
        return 0
    bundle = identity()
    try:
        board = board_runs(bundle)
    except ImportError as missing:
        print(f"virtual board unavailable: {missing}")
        return 0
    fs_files = flash.filesystem_files(main=True, identity=bundle)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        firmware = make_micropython_bin(
            work / "fw.bin", GENERIC_4MIB, app_size=1400 * 1024, payload=code_like
        )
        print(
            f"firmware: {len(firmware) // 1024} KB .bin; filesystem: 2048 KB LittleFS, {len(fs_files)} files"
        )
        print(
            f"virtual board at {REPL_BAUD}: mpremote cp -r {board['mpremote cp']:.2f} s, "
            f"provision {board['provision']:.2f} s"
        )
        for baud in [int(text) for text in args.bauds.split(",")]:
            line = flash_runs(work, work / "fw.bin", firmware, fs_files, baud)
            obvious = line["esptool"] + board["mpremote cp"] + board["provision"]
            ratio = obvious / line["one pass"]
            fast = baud == 921600
            print(f"--- flashing at {baud} baud")
            print(
                f"(a) esptool write-flash + mpremote cp + provision: {obvious:7.2f} s  "
                f"(esptool {line['esptool']:.2f} s)"
            )
            goal = (
                f", goal >= {GOAL_ONE_PASS_RATIO}x: {_verdict(ratio >= GOAL_ONE_PASS_RATIO)}" if fast else ""
            )
            print(
                f"(b) iotcprov flash --fs, one pass:                {line['one pass']:7.2f} s  "
                f"({line['one pass bytes'] // 1024} KB written; (a)/(b) = {ratio:.2f}x{goal})"
            )
            goal = (
                f"; goal < {GOAL_REFLASH_S:.0f} s: {_verdict(line['again'] < GOAL_REFLASH_S)}" if fast else ""
            )
            print(
                f"(c) the same again, board already flashed:        {line['again']:7.2f} s  "
                f"({line['again bytes']} bytes written{goal})"
            )
    print(f"--- deploy + provision at {REPL_BAUD} (virtual board)")
    totals = {}
    for label in ("deflate", "plain"):
        code, ident = board[f"deploy {label}"], board[f"provision {label}"]
        totals[label] = code + ident
        goal = (
            f"; goal < {GOAL_BOARD_S} s: {_verdict(totals[label] < GOAL_BOARD_S)}"
            if label == "deflate"
            else ""
        )
        print(
            f"{label:8s} deploy {code:.2f} s + provision {ident:.2f} s = {totals[label]:.2f} s  "
            f"({board[f'bytes {label}'] // 1024} KB sent{goal})"
        )
    print(f"plain / deflate = {totals['plain'] / totals['deflate']:.2f}x")
    one = board["one session"]
    print(
        f"deflate, deploy + provision in one session (as factory run): {one:.2f} s  "
        f"({board['bytes one session'] // 1024} KB sent; "
        f"goal < {GOAL_BOARD_S} s: {_verdict(one < GOAL_BOARD_S)})"
    )
    lines = board["one session, line numbers"]
    print(
        f"the same with line numbers (factory run --line-numbers): {lines:.2f} s  "
        f"({board['bytes one session, line numbers'] // 1024} KB sent)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
