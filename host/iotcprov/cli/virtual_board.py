"""`iotcprov virtual-board`: an ESP32 with stock MicroPython, offline, on a pty."""

import argparse
from typing import TYPE_CHECKING

from iotcprov.virtual_board.releases import NEWEST, RELEASE_ENV, RELEASES

if TYPE_CHECKING:
    from iotcprov.virtual_board.service import RunningBoard


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "virtual-board",
        help="run a virtual ESP32 (MicroPython unix port behind a pty) until Ctrl-C",
        description=(
            "Start a virtual board and print its port (a symlink to a pty) as the first line. "
            "mpremote, pyserial and esptool's serial layer open it like a USB-UART. "
            "Runs until SIGINT or SIGTERM. Needs Linux x86_64 (the MicroPython unix port)."
        ),
    )
    parser.add_argument(
        "--dir", metavar="DIR", help="the board's filesystem '/' (default: a new temporary folder)"
    )
    parser.add_argument("--mac", metavar="AA:BB:CC:DD:EE:FF", help="machine.unique_id() and the Wi-Fi MAC")
    parser.add_argument(
        "--baud", type=int, default=115200, metavar="N",
        help="throttle the serial bridge to this UART speed (default 115200; 0 = unthrottled)",
    )
    parser.add_argument(
        "--heap", metavar="SIZE",
        help=(
            "the Python heap the application gets, as on an ESP32 whose network, umqtt, ntptime and "
            "machine are built in: after boot gc.mem_free() is SIZE - 2K (the interpreter's own); "
            "the board's stand-ins live outside it (e.g. 64K; at least 16K; default: the unix "
            "port's 2M, stand-ins included)"
        ),
    )
    parser.add_argument(
        "--state", metavar="DIR",
        help="folder for the port link, faults.json and console.log (default: a new temporary folder)",
    )
    parser.add_argument(
        "--release", metavar="X.Y",
        help=(
            "the MicroPython release whose ESP32 modules the board reproduces: umqtt.simple's version "
            f"and quirks, v1.23's TLS key handling ({', '.join(RELEASES)}; default ${RELEASE_ENV}, "
            f"else {NEWEST})"
        ),
    )
    parser.add_argument(
        "--fault", action="append", default=[], metavar="NAME[=VALUE]",
        help=(
            "inject a fault from boot: wifi_fail=N|always, wifi_no_ap=N|always, ntp_fail=N|always, "
            "clock_unset (repeatable)"
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iotcprov.virtual_board.service import serve  # Linux only; on other systems it says so

    serve(
        args.dir, args.mac, args.baud, args.heap, args.state, args.fault, announce=_announce,
        release=args.release,
    )
    return 0


def _announce(board: "RunningBoard") -> None:
    print(board.port, flush=True)  # the first line: scripts read the port from it
    temporary = " (temporary, removed on exit)" if board.temporary_directory else ""
    print(f"board folder: {board.directory}{temporary}")
    print(f"state folder: {board.state_directory} (faults.json, console.log)")
    print(f"mac: {board.mac}  baud: {board.baud or 'unthrottled'}  MicroPython release: v{board.release}")
    print("running; stop with Ctrl-C", flush=True)
