"""`iotcprov demo`: the main job, offline.

Interim version: boots a virtual board and has MicroPython answer through mpremote's transport.
The full flow (emulator + provisioning + telemetry) replaces it.
"""

import argparse

from iotcprov.virtual_board.demo import run_interim_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the whole flow offline (emulator + virtual board)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = run_interim_demo()
    print(f"virtual board on {result.port}")
    print(f"sys.implementation: {result.implementation}")
    print(f"machine.unique_id(): {result.unique_id}")
    return 0
