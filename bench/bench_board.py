"""Board operations at the emulated UART speed: seconds and bytes on the wire for `provision` and
`deploy` on a virtual board throttled to 115200 baud, beside plain `mpremote fs cp` of the .py
sources; and the time of a one-pass `flash --fs` against the emulated ESP32 ROM loader.

Goal: identity + firmware in under 5 s per board at 115200 baud.

    python bench/bench_board.py [--firmware DIR]   # DIR holds iotc/ and main.py (default: packaged)
"""

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test rigs: tests.board

from iotcprov import resources
from iotcprov.board import deploy, provision
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.identity import IdentityRequest, build_identity
from iotcprov.board.trust import azure_roots

BAUD = 115200
GOAL_S = 5.0
GROUP_KEY = base64.b64encode(bytes(range(64))).decode()


def board_runs(firmware: Path) -> None:
    from iotcprov.virtual_board import VirtualBoard

    bundle = build_identity(
        IdentityRequest("0ne00ABCDEF", "bench-1", sas_from_group_key(GROUP_KEY, "bench-1"), azure_roots())
    )
    sources = deploy.firmware_sources(firmware)
    source_bytes = sum(len(data) for data in sources.values())
    with VirtualBoard(baud=BAUD) as board:
        identity = provision.provision(board.port, bundle)
        code = deploy.deploy(board.port, firmware=firmware, main=True)
        again = deploy.deploy(board.port, firmware=firmware, main=True)
    with VirtualBoard(baud=BAUD) as board:
        as_py = deploy.deploy(board.port, firmware=firmware, main=True, compile=False)
    with VirtualBoard(baud=BAUD) as board:
        board.run_mpremote("fs", "mkdir", ":lib")
        started = time.monotonic()
        board.run_mpremote("fs", "cp", "-r", str(firmware / "iotc"), ":lib/", timeout=600)
        baseline = time.monotonic() - started
    total = identity.seconds + code.seconds
    print(f"firmware sources: {len(sources)} files, {source_bytes} bytes of .py")
    print(f"provision (SAS, 2 Azure roots):   {identity.seconds:6.2f} s  {identity.bytes_sent:7d} bytes sent")
    print(f"deploy ({code.bytecode}, --main):       {code.seconds:6.2f} s  {code.bytes_sent:7d} bytes sent")
    print(f"deploy again (all unchanged):     {again.seconds:6.2f} s  {again.bytes_sent:7d} bytes sent")
    print(f"deploy as .py (--no-compile):     {as_py.seconds:6.2f} s  {as_py.bytes_sent:7d} bytes sent")
    print(
        f"baseline mpremote fs cp -r *.py:  {baseline:6.2f} s  (sends Python bytes literals, 256-byte chunks)"
    )
    verdict = "met" if total < GOAL_S else "MISSED"
    print(f"identity + firmware:              {total:6.2f} s  (goal < {GOAL_S:.0f} s: {verdict})")


def flash_run() -> None:
    try:
        import esp32_mock_bootloader  # noqa: F401
    except ImportError:
        print("flash --fs: skipped (pip install esp32-mock-bootloader)")
        return
    from iotcprov.board.flash import flash

    from tests.board.conftest import RomLoader
    from tests.board.firmware_images import GENERIC_4MIB, make_micropython_bin

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        # the size and layout of a MicroPython v1.25 generic ESP32 build
        image = make_micropython_bin(work / "fw.bin", GENERIC_4MIB, app_size=1400 * 1024)
        loader = RomLoader(work / "rom")
        try:
            files = deploy.build_deployment(None, main=(resources.firmware_dir() / "main.py").exists())[0]
            result = flash(loader.url, image, "esp32", fs_files=files)
        finally:
            loader.stop()
    sizes = " + ".join(f"{length // 1024} KB at {offset:#x}" for offset, length in result.regions)
    print(f"flash --fs (one esptool session): {result.seconds:6.2f} s  ({sizes}; emulated loader, socket://)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firmware", type=Path, default=resources.firmware_dir(), help="folder with iotc/")
    args = parser.parse_args()
    try:
        board_runs(args.firmware)
    except ImportError as missing:
        print(f"virtual board unavailable: {missing}")
    flash_run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
