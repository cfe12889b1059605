"""`VirtualBoard`: a virtual ESP32 for tests and tools, run by a supervisor thread.

    with VirtualBoard() as board:            # a new temporary folder as the board's '/'
        board.run_mpremote("exec", "print(1)")
        board.wait_for_output(r"iotc: boot")

Several boards can run at once in one process. Their MicroPython processes die with the process
that started them (PR_SET_PDEATHSIG), so a killed test leaves none behind.

Linux only; elsewhere `VirtualBoard(...)` raises MicroPythonMissing saying so. The supervisor (ptys,
termios, inotify) is imported only when a board starts, so this module imports on every OS.
"""

import atexit
import contextlib
import dataclasses
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from iotcprov.errors import OperationError
from iotcprov.virtual_board.console import ConsoleLog
from iotcprov.virtual_board.faults import check_faults
from iotcprov.virtual_board.micropython import find_micropython
from iotcprov.virtual_board.options import BoardOptions, build_options, format_mac

if TYPE_CHECKING:
    from iotcprov.virtual_board.supervisor import Supervisor

_running: "weakref.WeakSet[VirtualBoard]" = weakref.WeakSet()


class VirtualBoard:
    """An ESP32 running stock MicroPython, as far as a client on `port` can tell.

    directory: the board's filesystem '/' (None: a new temporary folder, removed by stop()).
    mac: "AA:BB:CC:DD:EE:FF" or 6 bytes (None: derived from the folder).
    baud: UART speed the serial bridge is throttled to (0: unthrottled).
    heap: the Python heap the application gets, e.g. "64K": gc.mem_free() is heap - 2 KB after
        boot, the stand-ins held outside it (see README, Heap; None: the unix port's default).
    faults: initial fault set, as for set_faults() (they apply from the first boot).
    release: the MicroPython release its ESP32 modules reproduce, e.g. "1.23" (None: the newest;
        see releases.py).
    state_directory: where the port link, faults.json and console.log live (None: temporary).
    console_file: also append the console log to state_directory/console.log.
    """

    def __init__(
        self, directory: Path | str | None = None, mac: str | bytes | None = None, baud: int = 0,
        heap: str | int | None = None, *, faults: dict | None = None, release: str | None = None,
        state_directory: Path | str | None = None, console_file: bool = False, boot_timeout: float = 30.0,
    ) -> None:
        micropython = find_micropython()
        self._temporary: list[Path] = []
        if directory is None:
            directory = self._make_temporary("iotcprov-board-")
        try:
            if state_directory is None:
                state_directory = self._make_temporary("iotcprov-board-state-")
            self.options: BoardOptions = build_options(
                Path(directory), Path(state_directory), micropython, mac=mac, baud=baud, heap=heap,
                faults=faults, release=release,
            )
        except BaseException:
            self._remove_temporary()
            raise
        self.boot_timeout = boot_timeout
        self._console_file = console_file
        self._supervisor: Supervisor | None = None
        self._thread: threading.Thread | None = None
        self._log: ConsoleLog | None = None
        self._port = ""

    # --- life cycle ------------------------------------------------------------------------------

    def __enter__(self) -> "VirtualBoard":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> "VirtualBoard":
        """Power the board on; returns once MicroPython has started boot.py."""
        if self._supervisor is not None:
            raise OperationError("virtual board: already started")
        from iotcprov.virtual_board.supervisor import Supervisor  # POSIX-only: see the module docstring

        self.options.state_directory.mkdir(parents=True, exist_ok=True)
        sink = self.options.state_directory / "console.log" if self._console_file else None
        self._log = ConsoleLog(sink=sink)
        self._supervisor = Supervisor(self.options, self._log)
        self._port = self._supervisor.open()
        self._thread = threading.Thread(
            target=self._supervisor.run, name=f"virtual board {self._port}", daemon=True
        )
        self._thread.start()
        _running.add(self)
        try:
            self._power("power_on")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Power off, close the port and remove the temporary folders."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            with contextlib.suppress(RuntimeError, TimeoutError):
                supervisor.call("stop")
            if self._thread is not None:
                self._thread.join(timeout=10)
        if self._log is not None:
            self._log.close()
        _running.discard(self)
        self._remove_temporary()

    # --- what a test sees --------------------------------------------------------------------------

    @property
    def port(self) -> str:
        """Path of the symlink to the port pty: what mpremote, pyserial and esptool open."""
        return self._port

    @property
    def directory(self) -> Path:
        """The board's filesystem '/' on the host."""
        return self.options.directory

    @property
    def state_directory(self) -> Path:
        return self.options.state_directory

    @property
    def mac(self) -> str:
        return format_mac(self.options.mac)

    @property
    def halted(self) -> str | None:
        """Why the board stopped by itself (MicroPython kept crashing or would not start), else None."""
        return self._supervisor.halted if self._supervisor else None

    def output(self) -> str:
        """Everything the board printed since start(), all boots."""
        return self._require_log().text()

    def output_mark(self) -> int:
        """An offset into output() for `since=`: only output after this moment is searched."""
        return self._require_log().mark()

    def wait_for_output(
        self, regex: str | re.Pattern, timeout: float = 30.0, since: int | None = None
    ) -> re.Match:
        """Wait for console output matching `regex`; TimeoutError (with the log's tail) otherwise."""
        supervisor = self._supervisor

        def halted() -> str | None:
            return supervisor and supervisor.halted and f"board halted: {supervisor.halted}"

        try:
            return self._require_log().wait_for(regex, timeout, since, failed=halted)
        except RuntimeError as error:
            raise OperationError(f"virtual board: {error}") from None

    # --- the power switch and the stand-ins -------------------------------------------------------

    def reset(self) -> None:
        """Power-on reset (the EN button): boot.py and main.py run again. Returns once it boots."""
        self._power("reset")

    def power_off(self) -> None:
        """Abrupt power cut: MicroPython is killed mid-flight; the port stays open."""
        self._require_supervisor().call("power_off")

    def power_on(self) -> None:
        """Boot again after power_off() (no-op when on). Returns once it boots."""
        self._power("power_on")

    def set_faults(self, **faults) -> dict:
        """Replace the fault set the stand-ins obey (counts restart). See iotcprov.virtual_board.faults.

        wifi_fail=N|"always", ntp_fail=N|"always", clock_unset=True, power_cut_write=N. No arguments
        clears all faults.
        """
        checked = check_faults(faults)
        if self._supervisor is None:
            self.options = dataclasses.replace(self.options, faults=checked)
            return checked
        return self._supervisor.set_faults(checked)

    def on_power_cut(self, callback) -> None:
        """Call `callback()` (from the supervisor thread) when the power_cut_write fault cuts the
        power; the board stays off until power_on()."""
        self._require_supervisor().on_power_cut(callback)

    def on_halt(self, callback) -> None:
        """Call `callback()` (from the supervisor thread) if the board halts or its supervisor ends."""
        self._require_supervisor().on_halt(callback)

    def run_mpremote(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run `python -m mpremote connect <port> ARGS...` as a separate process; text output."""
        result = subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", self.port, *args],
            capture_output=True, text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            said = (result.stdout + result.stderr).strip()[-1000:]
            raise OperationError(f"mpremote {' '.join(args)} exited with {result.returncode}: {said}")
        return result

    # --- helpers -------------------------------------------------------------------------------

    def _power(self, command: str) -> None:
        supervisor = self._require_supervisor()
        boot = supervisor.call(command)
        try:
            supervisor.wait_ready(boot, self.boot_timeout)
        except (RuntimeError, TimeoutError) as error:
            raise OperationError(f"virtual board: {error}") from None

    def _require_supervisor(self) -> "Supervisor":
        if self._supervisor is None:
            raise OperationError("virtual board: not started; use start() or a with-block")
        return self._supervisor

    def _require_log(self) -> ConsoleLog:
        if self._log is None:
            raise OperationError("virtual board: not started; use start() or a with-block")
        return self._log

    def _make_temporary(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self._temporary.append(path)
        return path

    def _remove_temporary(self) -> None:
        while self._temporary:
            shutil.rmtree(self._temporary.pop(), ignore_errors=True)


@atexit.register
def _stop_all() -> None:
    for board in list(_running):
        with contextlib.suppress(Exception):
            board.stop()
