"""The `iotcprov` command: argument parsing and printing only.

Each command group lives in its own module with `register(subparsers)`; a command sets
`func=handler`, where `handler(args) -> int` calls one service function and prints.
"""

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from iotcprov import __version__
from iotcprov.errors import IotcprovError
from iotcprov.validation import shown

# Command-group modules under iotcprov.cli, in the order `--help` lists them.
COMMAND_MODULES = [
    "demo",
    "keys",
    "certs",
    "emulator",
    "virtual_board",
    "board",
    "factory",
    "central",
]


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (`iotcprov: error: ...`, exit 2), secrets redacted.

    argparse echoes unrecognised arguments and `--opt=value` text; a mistyped `--grup-key SECRET`
    must not print the secret, so only option names survive in the message.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--key-f` must not quietly mean `--key-file`
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"iotcprov: error: {_redact(message)} (see {self.prog} --help)\n")


def _redact(message: str) -> str:
    head, sep, tail = message.partition("unrecognized arguments: ")
    if sep:
        names = [word.split("=", 1)[0] for word in tail.split() if word.startswith("-")]
        return f"{head}unrecognized arguments: {' '.join(names) or '(values hidden)'}"
    message = re.sub(r"(--?[\w-]+)=\S*", r"\1=...", message)
    # argparse quotes a value it refused ("invalid int value: '...'"): not when it could be a key
    return re.sub(r"'([^']*)'", lambda m: m[0] if shown(m[1]) == repr(m[1]) else shown(m[1]), message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
