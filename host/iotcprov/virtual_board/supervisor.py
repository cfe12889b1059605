"""The virtual board's supervisor: the MicroPython unix port behind a pty, bridged to the port pty
that clients (mpremote, pyserial, esptool) open, so that it behaves like an ESP32 behind a USB-UART.

One thread runs `run()`: a poll loop over the port pty, the child's pty, an inotify watch that
counts clients on the port, and a wake-up pipe for commands from other threads (`call`). The child
is restarted for every reset, because the unix port exits where a board soft-resets:

- power-on (start, EN / `reset()`, `machine.reset()`, watchdog): ROM lines, boot.py, main.py;
- soft reboot (Ctrl-D, `machine.soft_reset()`, `sys.exit()`): `MPY: soft reboot`, boot.py, and
  main.py only from the friendly REPL; from the raw REPL the new child's friendly banner is hidden
  and `Ctrl-A` re-enters the raw REPL, as a board stays in it.

Linux only (ptys, inotify, PR_SET_PDEATHSIG).
"""

import contextlib
import ctypes
import errno
import json
import os
import pty
import queue
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import tty
from collections import deque

from iotcprov.virtual_board.console import ConsoleLog
from iotcprov.virtual_board.faults import write_faults
from iotcprov.virtual_board.frozen import SHIM, STANDINS_DIR
from iotcprov.virtual_board.heap import free_at_boot, unix_heapsize
from iotcprov.virtual_board.options import BoardOptions
from iotcprov.virtual_board.stream import EventFilter, Pacer

__all__ = ["SHIM", "STANDINS_DIR", "Supervisor"]

# machine.reset_cause() values of the ESP32 port
PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 5

ROM_HEADER = b"ets Jul 29 2019 12:21:46\r\n\r\n"
ROM_RESET_LINE = {
    PWRON_RESET: b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
    SOFT_RESET: b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
    WDT_RESET: b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
}
SOFT_REBOOT = b"MPY: soft reboot\r\n"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'
FRIENDLY_PROMPT = b">>> "
CTRL_A = b"\x01"
CTRL_C = b"\x03"
BANNER_TAIL = max(len(RAW_BANNER), len(FRIENDLY_BANNER)) - 1

# Runs in the child before MicroPython: die with the supervisor, take the pty as controlling
# terminal (so Ctrl-C raises SIGINT), then become MicroPython.
LAUNCHER = """
import ctypes, fcntl, os, signal, sys, termios
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
os.execv(sys.argv[2], sys.argv[2:])
"""

PENDING_LIMIT = 64 * 1024  # bytes queued per direction before reading stops (backpressure)
HOLD_LIMIT = 64 * 1024  # client bytes kept while the board boots
STALL_S = 2.0  # a client that reads nothing for this long loses the output, as from a real UART
CRASH_WINDOW_S = 10.0
CRASH_LIMIT = 3

IN_OPEN = 0x20
IN_CLOSE = 0x08 | 0x10
IN_Q_OVERFLOW = 0x4000

# Client input is forwarded only in RUNNING. STARTING: until the shim runs (before it, Ctrl-C would
# hit CPython's start-up); SETTLING: from the end of boot.py/main.py until the REPL prompt (the
# unix port leaves SIGINT at its default there; _interrupt_child already passes Ctrl-C on as a byte
# then, and holding input closes the last gap); HIDING: a soft reboot from the raw REPL, until the
# raw REPL is back.
OFF, STARTING, SETTLING, HIDING, RUNNING = "off", "starting", "settling", "hiding", "running"


# The board's flash holds its device key, private key and Wi-Fi password: what MicroPython writes
# into the board folder is for this user only (0600 files, 0700 folders).
BOARD_UMASK = 0o077


class Supervisor:
    def __init__(self, options: BoardOptions, log: ConsoleLog) -> None:
        self.options = options
        self.log = log
        self.port_link = options.state_directory / "port"
        self.halted: str | None = None
        self.stopped = threading.Event()  # set when the loop has ended
        self._on_halt: list = []
        self._on_power_cut: list = []

        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stopping = False
        self._changed = threading.Condition()

        self._port_fd: int | None = None
        self._port_slave: int | None = None
        self._port_name = ""
        self._inotify: int | None = None
        self._clients: int | None = None  # None: unknown, assume someone listens

        self._child: subprocess.Popen | None = None
        self._child_fd: int | None = None
        self._generation = 0  # counts children, so a replaced child's leftovers are ignored
        self._state = OFF
        self._hide_phase = 0  # in HIDING: 0 boot.py runs, 1 banner being hidden, 2 raw REPL asked for
        self._hidden = b""
        self._prompt_tail = b""
        self._filter = EventFilter()
        self._raw = False
        self._banner_tail = b""
        self._cause = PWRON_RESET
        self._power_on_ns = time.time_ns()
        self._boot_number = 0
        self._ready_boot = 0
        self._crashes: deque = deque()

        self._wdt_timeout: float | None = None
        self._wdt_deadline: float | None = None

        self._to_port = bytearray()
        self._to_child = bytearray()
        self._held = bytearray()
        self._port_progress = 0.0
        self._out_pacer = Pacer(options.baud)
        self._in_pacer = Pacer(options.baud)

    # --- from any thread ---------------------------------------------------------------------

    def call(self, name: str, timeout: float = 30.0):
        """Run a command (power_on, reset, power_off, stop) in the loop thread; return its result."""
        if self.stopped.is_set():
            raise RuntimeError("the virtual board has stopped")
        done = threading.Event()
        box: list = []
        self._commands.put((name, box, done))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError(f"virtual board: command {name!r} not carried out within {timeout:g} s")
        if box and isinstance(box[0], BaseException):
            raise box[0]
        return box[0] if box else None

    def on_halt(self, callback) -> None:
        self._on_halt.append(callback)

    def on_power_cut(self, callback) -> None:
        self._on_power_cut.append(callback)

    def wait_ready(self, boot: int, timeout: float) -> None:
        """Wait until boot number `boot` has started running boot.py."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._ready_boot < boot:
                if self.halted:
                    raise RuntimeError(f"board halted: {self.halted}; last output:\n{self.log.tail()}")
                if self.stopped.is_set():
                    raise RuntimeError("the virtual board has stopped")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"virtual board did not boot within {timeout:g} s; last output:\n{self.log.tail()}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def set_faults(self, faults: dict) -> dict:
        return write_faults(self.options.state_directory, faults)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    # --- setup and teardown --------------------------------------------------------------------

    def open(self) -> str:
        """Create the port pty and its symlink; returns the symlink's path."""
        self.options.state_directory.mkdir(parents=True, exist_ok=True)
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._port_fd, self._port_slave = master, slave
        self._port_name = os.ttyname(slave)
        if self.port_link.is_symlink() or self.port_link.exists():
            self.port_link.unlink()
        os.symlink(self._port_name, self.port_link)
        self._inotify = _watch_opens(self._port_name)
        self._clients = 0 if self._inotify is not None else None
        if self.options.faults:
            write_faults(self.options.state_directory, self.options.faults)
        return str(self.port_link)

    def run(self) -> None:
        try:
            while not self._stopping:
                self._step()
        except BaseException as error:  # a bug here must not leave a child behind
            self.halted = self.halted or f"supervisor failed: {error!r}"
            raise
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._kill_child()
        for fd in (self._port_fd, self._port_slave, self._inotify, self._wake_r):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._port_fd = self._port_slave = self._inotify = None
        with contextlib.suppress(OSError):
            if os.readlink(self.port_link) == self._port_name:
                self.port_link.unlink()
        while not self._commands.empty():
            _name, box, done = self._commands.get_nowait()
            box.append(RuntimeError("the virtual board has stopped"))
            done.set()
        with self._changed:
            self.stopped.set()
            self._changed.notify_all()
        for callback in self._on_halt:
            callback()

    # --- the loop ------------------------------------------------------------------------------

    def _step(self) -> None:
        now = time.monotonic()
        self._check_timers(now)
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if self._inotify is not None:
            poller.register(self._inotify, select.POLLIN)
        port_events = 0
        if len(self._to_child) < PENDING_LIMIT and self._in_pacer.budget(now):
            port_events |= select.POLLIN
        if self._to_port:
            port_events |= select.POLLOUT
        if port_events:
            poller.register(self._port_fd, port_events)
        child_fd = self._child_fd
        if child_fd is not None:
            child_events = 0
            if len(self._to_port) < PENDING_LIMIT and self._out_pacer.budget(now):
                child_events |= select.POLLIN
            if self._to_child:
                child_events |= select.POLLOUT
            poller.register(child_fd, child_events)  # hang-ups are reported even with no events
        ready = dict(poller.poll(self._timeout_ms(now)))

        if self._wake_r in ready:
            self._run_commands()
        if self._inotify is not None and self._inotify in ready:
            self._count_clients()
        events = ready.get(child_fd, 0) if child_fd is not None else 0
        if events and child_fd == self._child_fd:
            if events & select.POLLIN:
                self._read_child(drain=False)
            if events & select.POLLOUT and child_fd == self._child_fd:
                self._write_child()
            if events & (select.POLLHUP | select.POLLERR) and child_fd == self._child_fd:
                self._read_child(drain=True)
        events = ready.get(self._port_fd, 0)
        if events & select.POLLIN:
            self._read_port()
        if events & select.POLLOUT:
            self._write_port()

    def _timeout_ms(self, now: float) -> int:
        waits = [1.0]
        if self._wdt_deadline is not None:
            waits.append(self._wdt_deadline - now)
        if self._to_port:
            waits.append(self._port_progress + STALL_S - now)
        if self._child_fd is not None and len(self._to_port) < PENDING_LIMIT:
            waits.append(self._out_pacer.delay(now) or 1.0)
        if len(self._to_child) < PENDING_LIMIT:
            waits.append(self._in_pacer.delay(now) or 1.0)
        return max(0, int(min(waits) * 1000) + 1)

    def _check_timers(self, now: float) -> None:
        if self._wdt_deadline is not None and now >= self._wdt_deadline:
            uptime_ms = (time.time_ns() - self._power_on_ns) // 1_000_000
            note = f"E ({uptime_ms}) task_wdt: Task watchdog got triggered.\r\n".encode()
            self._power_on(WDT_RESET, note)
        if self._to_port and now - self._port_progress > STALL_S:
            self._drop_port_output()

    def _run_commands(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass
        while True:
            try:
                name, box, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                box.append(self._command(name))
            except Exception as error:  # handed to the caller
                box.append(error)
            done.set()

    def _command(self, name: str):
        if name == "power_on":
            return self._boot_number if self._state != OFF else self._power_on(PWRON_RESET)
        if name == "reset":
            return self._power_on(PWRON_RESET)
        if name == "power_off":
            self._power_off()
            return None
        if name == "stop":
            self._stopping = True
            return None
        raise ValueError(f"unknown virtual board command {name!r}")

    # --- the port (client side) ------------------------------------------------------------------

    def _count_clients(self) -> None:
        try:
            data = os.read(self._inotify, 4096)
        except BlockingIOError:
            return
        offset = 0
        while offset + 16 <= len(data):
            _wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            offset += 16 + length
            if mask & IN_Q_OVERFLOW:
                self._clients = None
            elif self._clients is not None:
                if mask & IN_OPEN:
                    self._clients += 1
                if mask & IN_CLOSE:
                    self._clients = max(0, self._clients - 1)
        if self._clients == 0:
            self._drop_port_output()

    def _drop_port_output(self) -> None:
        # Nobody is reading: the bytes are gone, as from a UART with nothing listening.
        self._to_port.clear()
        with contextlib.suppress(OSError):
            termios.tcflush(self._port_slave, termios.TCIFLUSH)

    def _read_port(self) -> None:
        now = time.monotonic()
        budget = self._in_pacer.budget(now)
        if not budget:
            return
        try:
            data = os.read(self._port_fd, budget)
        except (BlockingIOError, OSError):
            return
        self._in_pacer.spend(len(data), now)
        if self._state == RUNNING:
            self._to_child += data
        elif self._state in (STARTING, SETTLING, HIDING):
            self._held += data[: max(0, HOLD_LIMIT - len(self._held))]
        # OFF: nothing is there to receive it

    def _write_port(self) -> None:
        try:
            written = os.write(self._port_fd, self._to_port[:65536])
        except BlockingIOError:
            return
        except OSError:
            self._to_port.clear()
            return
        del self._to_port[:written]
        self._port_progress = time.monotonic()

    def _emit(self, data: bytes) -> str | None:
        """Board output: to the log and to the port; returns the last REPL banner seen in it."""
        self.log.append(data)
        if self._clients != 0:
            if not self._to_port:
                self._port_progress = time.monotonic()
            self._to_port += data
        window = self._banner_tail + data
        self._banner_tail = window[-BANNER_TAIL:]  # a banner split across reads is still seen, once
        raw_at, friendly_at = window.rfind(RAW_BANNER), window.rfind(FRIENDLY_BANNER)
        if raw_at < 0 and friendly_at < 0:
            return None
        self._raw = raw_at > friendly_at
        return "raw" if self._raw else "friendly"

    # --- the child (board side) ------------------------------------------------------------------

    def _read_child(self, drain: bool) -> None:
        generation = self._generation
        while self._child_fd is not None and generation == self._generation:
            now = time.monotonic()
            budget = 65536 if drain else self._out_pacer.budget(now)
            if not budget:
                return
            try:
                data = os.read(self._child_fd, budget)
            except BlockingIOError:
                if drain:  # hung up with nothing left to read
                    self._child_exited()
                return
            except OSError as error:
                if error.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                self._child_exited()
                return
            self._out_pacer.spend(len(data), now)
            for kind, value in self._filter.feed(data):
                if generation != self._generation:
                    return  # an event replaced the child: the rest belonged to the old one
                if kind == "event":
                    self._on_event(value)
                else:
                    self._on_child_text(value)
            if not drain:
                return

    def _on_child_text(self, data: bytes) -> None:
        if self._state == SETTLING:
            window = self._prompt_tail + data
            self._prompt_tail = window[-(len(FRIENDLY_PROMPT) - 1) :]
            if FRIENDLY_PROMPT in window:
                self._emit(data)
                self._state = RUNNING
                self._release_held()
                return
        if self._state == HIDING and self._hide_phase == 1:
            self._hidden += data
            at = self._hidden.find(FRIENDLY_PROMPT)
            if at < 0:
                self._hidden = self._hidden[-4096:]
                return
            data = self._hidden[at + len(FRIENDLY_PROMPT) :]
            self._hidden = b""
            self._hide_phase = 2
            self._to_child[:0] = CTRL_A  # back into the raw REPL, where the client left the board
            if not data:
                return
        seen = self._emit(data)
        if self._state == HIDING and self._hide_phase == 2 and seen == "raw":
            self._state = RUNNING
            self._release_held()

    def _on_event(self, name: str) -> None:
        now = time.monotonic()
        if name == "ready":
            if self._state == STARTING:
                self._state = RUNNING
                self._release_held()
            with self._changed:
                self._ready_boot = self._boot_number
                self._changed.notify_all()
        elif name == "failed":
            self._halt("MicroPython could not start the board; see the output above")
        elif name == "booted":
            if self._state == HIDING:
                self._hide_phase = 1
            elif self._state == RUNNING:
                self._state = SETTLING
                self._prompt_tail = b""
        elif name == "reset":
            self._power_on(SOFT_RESET)
        elif name == "power_cut":  # the power_cut_write fault: off, as power_off(), until power_on()
            self._power_off()
            for callback in self._on_power_cut:
                callback()
        elif name == "soft":
            self._soft_reboot()
        elif name.startswith("wdt="):
            self._wdt_timeout = int(name[4:]) / 1000
            self._wdt_deadline = now + self._wdt_timeout
        elif name == "feed" and self._wdt_timeout is not None:
            self._wdt_deadline = now + self._wdt_timeout

    def _release_held(self) -> None:
        self._to_child += self._held
        self._held.clear()

    def _write_child(self) -> None:
        chunk = bytes(self._to_child[:4096])
        at = chunk.find(CTRL_C)
        if at == 0 and self._interrupt_child():
            del self._to_child[:1]
            return
        if at >= 0:
            chunk = chunk[: max(at, 1)]  # bytes before a Ctrl-C reach the board before it acts
        try:
            written = os.write(self._child_fd, chunk)
        except BlockingIOError:
            return
        except OSError:
            return  # the child is going; its hang-up is handled on read
        del self._to_child[:written]

    def _interrupt_child(self) -> bool:
        """Ctrl-C while MicroPython runs code: SIGINT, as a board's UART interrupt raises
        KeyboardInterrupt. Anywhere else (its prompt, between scripts) the byte is passed on for
        the REPL to read, as on a board; a SIGINT there would kill the unix port (SIG_DFL)."""
        child = self._child
        if child is None or not _catches_sigint(child.pid):
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGINT)
        return True

    def _child_exited(self) -> None:
        child, was_ready = self._child, self._ready_boot == self._boot_number
        self._close_child()
        code = _reap(child)
        if code == -signal.SIGINT and was_ready:
            self._soft_reboot()  # a Ctrl-C in a gap where the unix port leaves SIGINT at its default
        elif code is not None and code < 0:
            self._crashed(f"MicroPython crashed (signal {-code})")
        elif not was_ready:
            self._halt(f"MicroPython exited while starting (exit code {code}); see the output above")
        else:
            self._soft_reboot()  # the unix port exits where a board soft-resets

    def _crashed(self, reason: str) -> None:
        now = time.monotonic()
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > CRASH_WINDOW_S:
            self._crashes.popleft()
        if len(self._crashes) >= CRASH_LIMIT:
            self._halt(f"{reason}, {CRASH_LIMIT} times in {CRASH_WINDOW_S:g} s; board halted")
        else:
            self._power_on(SOFT_RESET, f"\r\nvirtual board: {reason}; rebooting\r\n".encode())

    def _halt(self, reason: str) -> None:
        self._kill_child()
        self._state = OFF
        self._emit(f"\r\nvirtual board: {reason}\r\n".encode())
        with self._changed:
            self.halted = reason
            self._changed.notify_all()
        for callback in self._on_halt:
            callback()

    # --- boots -----------------------------------------------------------------------------------

    def _power_on(self, cause: int, note: bytes = b"") -> int:
        self._kill_child()
        self.halted = None
        self._wdt_timeout = self._wdt_deadline = None
        self._cause = cause
        self._raw = False
        self._power_on_ns = time.time_ns()
        with contextlib.suppress(FileNotFoundError):
            (self.options.state_directory / "clock.json").unlink()  # the RTC lost power too
        self._emit(note + ROM_HEADER + ROM_RESET_LINE[cause])
        return self._spawn(run_main=True, hide=False)

    def _soft_reboot(self) -> int:
        self._kill_child()
        self._emit(SOFT_REBOOT)
        raw = self._raw
        return self._spawn(run_main=not raw, hide=raw)

    def _power_off(self) -> None:
        self._kill_child()
        self._state = OFF
        self._wdt_timeout = self._wdt_deadline = None

    def _spawn(self, run_main: bool, hide: bool) -> int:
        options = self.options
        master, slave = pty.openpty()
        _set_child_tty(slave)
        config = {
            "root": str(options.directory), "state": str(options.state_directory),
            "standins": str(options.standins), "mac": options.mac.hex(), "main": run_main,
            "cause": self._cause, "power_on_ns": self._power_on_ns,
            "free_heap": None if options.heap is None else free_at_boot(options.heap),
            **options.release.standin_config(),
        }
        env = dict(os.environ, IOTCPROV_VBOARD=json.dumps(config))
        heap = [] if options.heap is None else ["-X", f"heapsize={unix_heapsize(options.heap)}"]
        argv = [sys.executable, "-c", LAUNCHER, str(os.getpid()), options.micropython, *heap, "-i", str(SHIM)]
        try:
            child = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=options.state_directory,
                start_new_session=True, close_fds=True,
                umask=BOARD_UMASK,
            )
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._child, self._child_fd = child, master
        self._generation += 1
        self._filter = EventFilter()
        self._to_child.clear()
        self._state = HIDING if hide else STARTING
        self._hide_phase = 0
        self._hidden = b""
        self._boot_number += 1
        return self._boot_number

    def _close_child(self) -> None:
        if self._child_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._child_fd)
        self._child_fd = None
        self._child = None
        self._generation += 1
        self._to_child.clear()

    def _kill_child(self) -> None:
        child = self._child
        self._close_child()
        if child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            _reap(child)


def _reap(child: subprocess.Popen | None) -> int | None:
    if child is None:
        return None
    try:
        return child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        return child.wait()


def _set_child_tty(fd: int) -> None:
    # Raw: no \n -> \r\n translation (it breaks mpremote's matching) and no ISIG. The supervisor
    # turns Ctrl-C into SIGINT itself, only while MicroPython has its handler installed.
    tty.setraw(fd)


def _catches_sigint(pid: int) -> bool:
    """True while `pid` has a SIGINT handler: the unix port installs one only while it runs code."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError):
        pass
    return False


def _watch_opens(path: str) -> int | None:
    """An inotify descriptor reporting opens and closes of the port, or None where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, path.encode(), IN_OPEN | IN_CLOSE) < 0:
            os.close(fd)
            return None
        return fd
    except (OSError, AttributeError):
        return None
