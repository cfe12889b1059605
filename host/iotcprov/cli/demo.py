"""`iotcprov demo`: the main job, offline."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the whole flow offline (emulator + virtual board)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("iotcprov demo: not built yet")
    return 1
