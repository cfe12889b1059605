"""`iotcprov virtual-board`: run one virtual board in the foreground until SIGINT or SIGTERM."""

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iotcprov.errors import OperationError
from iotcprov.virtual_board.board import VirtualBoard
from iotcprov.virtual_board.faults import parse_fault_arguments


@dataclass(frozen=True)
class RunningBoard:
    port: str
    directory: Path
    state_directory: Path
    mac: str
    baud: int
    temporary_directory: bool
    release: str


def serve(
    directory: str | None, mac: str | None, baud: int, heap: str | None, state_directory: str | None,
    faults: list[str], announce: Callable[[RunningBoard], None], release: str | None = None,
) -> None:
    """Start the board, call `announce` once it boots, and run until SIGINT/SIGTERM.

    Raises InputError for bad options (before anything starts) and OperationError if the board
    halts by itself (MicroPython would not start or kept crashing).
    """
    board = VirtualBoard(
        directory, mac=mac, baud=baud, heap=heap, faults=parse_fault_arguments(faults),
        state_directory=state_directory, console_file=True, release=release,
    )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        board.start()
        board.on_halt(stop.set)
        announce(RunningBoard(
            port=board.port, directory=board.directory, state_directory=board.state_directory,
            mac=board.mac, baud=baud, temporary_directory=directory is None,
            release=board.options.release.name,
        ))
        stop.wait()
        halted = board.halted
    finally:
        board.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if halted:
        raise OperationError(f"virtual board halted: {halted}")
