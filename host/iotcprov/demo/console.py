"""Following the board's console while the demo runs: every line goes onto the timeline as it
arrives, and the steps wait for the firmware's `iotc: <event> ...` status lines (firmware/README.md)
instead of sleeping."""

import dataclasses
import re
import threading
import time

from iotcprov.board.monitor import StatusLine, parse_status
from iotcprov.demo.timeline import BOARD, Timeline
from iotcprov.errors import OperationError

_LINE = re.compile(r"([^\n]*)\n")
# Status events after which the demo cannot go on: the firmware says what went wrong.
FAILURE_EVENTS = frozenset(
    {"config error", "wifi failed", "clock failed", "dps failed", "hub failed", "stopped", "error"}
)


class ConsoleFollower:
    """A thread that reads a virtual board's console from `since` on and records its status lines.

    The board is any object with `wait_for_output(regex, timeout, since)` returning a match whose
    end() is the next offset (VirtualBoard keeps its whole console log, so offsets are absolute).
    """

    def __init__(self, board, timeline: Timeline, step: str, since: int) -> None:
        self._board = board
        self._timeline = timeline
        self.step = step  # the step lines are filed under; the runner moves it along
        self._mark = since
        self._statuses: list[StatusLine] = []
        self._cursor = 0  # statuses before this index were consumed by wait_for
        self._halted: str | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="demo console", daemon=True)

    def start(self) -> "ConsoleFollower":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                match = self._board.wait_for_output(_LINE, timeout=0.5, since=self._mark)
            except TimeoutError:
                continue
            except OperationError as error:  # the board halted (MicroPython would not run)
                with self._changed:
                    self._halted = str(error).split(";")[0]
                    self._changed.notify_all()
                return
            self._mark = match.end()
            line = match[1].rstrip("\r")
            if not line.strip():
                continue
            status = parse_status(line)
            event = self._timeline.emit(
                BOARD, self.step, line, status=status.event if status else None
            )
            if status is not None:
                with self._changed:
                    self._statuses.append(
                        dataclasses.replace(status, seconds=event.seconds)
                    )
                    self._changed.notify_all()

    def wait_for(self, wanted: str, timeout: float) -> StatusLine:
        """The next status line with event `wanted`. Raises OperationError as soon as the firmware
        reports a failure or the board halts, and when `timeout` seconds pass without it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                while self._cursor < len(self._statuses):
                    status = self._statuses[self._cursor]
                    self._cursor += 1
                    if status.event == wanted:
                        return status
                    if status.event in FAILURE_EVENTS:
                        raise OperationError(f"the board reported: {status.line}")
                if self._halted:
                    raise OperationError(self._halted)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OperationError(f"no `iotc: {wanted}` line from the board within {timeout:g} s")
                self._changed.wait(remaining)
