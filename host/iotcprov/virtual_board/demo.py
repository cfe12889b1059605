"""The interim demo: a virtual board answering through mpremote's own serial transport."""

from dataclasses import dataclass

from iotcprov.errors import OperationError
from iotcprov.virtual_board.board import VirtualBoard

QUESTION = (
    "import sys, machine, binascii\n"
    "print(sys.implementation)\n"
    "print(binascii.hexlify(machine.unique_id(), ':').decode())\n"
)


@dataclass(frozen=True)
class DemoResult:
    port: str
    implementation: str
    unique_id: str


def run_interim_demo() -> DemoResult:
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    with VirtualBoard() as board:
        transport = SerialTransport(board.port, baudrate=115200)
        try:
            transport.enter_raw_repl()
            answer = transport.exec(QUESTION).decode()
            transport.exit_raw_repl()
        except TransportError as error:
            raise OperationError(f"demo: the virtual board did not answer: {error}") from None
        finally:
            transport.close()
        lines = answer.strip().splitlines()
        if len(lines) != 2:
            raise OperationError(f"demo: unexpected answer from the board: {answer!r}")
        return DemoResult(port=board.port, implementation=lines[0], unique_id=lines[1].upper())
