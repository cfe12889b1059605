"""The `iotcprov` command: argument parsing and printing only.

Each command group lives in its own module with `register(subparsers)`; a command sets
`func=handler`, where `handler(args) -> int` calls one service function and prints.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from iotcprov import __version__
from iotcprov.errors import IotcprovError

# Command-group modules under iotcprov.cli, in the order `--help` lists them.
COMMAND_MODULES = [
    "demo",
    "virtual_board",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotcprov",
        description="Provision ESP32 MicroPython boards for Azure IoT Central, or try it all offline.",
    )
    parser.add_argument("--version", action="version", version=f"iotcprov {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"iotcprov.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except IotcprovError as error:
        print(f"iotcprov: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("iotcprov: interrupted", file=sys.stderr)
        return 130
