"""An open raw-REPL session on a MicroPython board, over mpremote's SerialTransport.

The session installs a few small helper functions on the board (ONBOARD_HELPERS) so that a file
travels as one or a few exec calls of base64 text (zlib-compressed when the board has `deflate`;
several files as one stream, `bundle`) and is verified by a SHA-256 computed on the board. It
counts the bytes on the wire both ways.
"""

import ast
import base64
import contextlib
import dataclasses
import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from iotcprov.board import bundle, port_users
from iotcprov.board.quiet import capture_stdout
from iotcprov.errors import InputError, OperationError

# Base64 characters per exec: small enough for an ESP32 heap, large enough that the per-call
# round trip is a small part of the time.
CHUNK_B64 = 4096
CONNECT_TIMEOUT = 6.0
READ_TIMEOUT = 5.0
Progress = Callable[[int, int], None]  # progress(done, total): bytes, for a progress bar

# Runs on the board (stock MicroPython >= 1.23; deflate is optional). Names start with _i so they
# do not collide with anything a user might have in the REPL globals.
ONBOARD_HELPERS = """\
import os,binascii,hashlib
try:
 import deflate
except ImportError:
 deflate=None
def _ip(p):
 q=''
 for s in p.split('/'):
  if s:
   q+='/'+s
   try:os.mkdir(q)
   except OSError:pass
def _iw(p,d,m):
 with open(p,m) as f:f.write(binascii.a2b_base64(d))
def _ih(p):
 h=hashlib.sha256();b=bytearray(512);v=memoryview(b)
 try:f=open(p,'rb')
 except OSError:return None
 with f:
  while 1:
   n=f.readinto(b)
   if not n:break
   h.update(v[:n])
 return binascii.hexlify(h.digest()).decode()
def _irm(p):
 try:m=os.stat(p)[0]
 except OSError:return
 if m&0x4000:
  for e in list(os.ilistdir(p)):_irm(p+'/'+e[0])
  os.rmdir(p)
 else:os.remove(p)
def _ird(p):
 try:
  with open(p) as f:return f.read()
 except OSError:return None
def _ils(p):
 try:return [(e[0],e[1]&0x4000!=0) for e in os.ilistdir(p)]
 except OSError:return None
"""

# Expand the compressed staging file `s` into `p` and return its SHA-256 (a single compressed
# file, `write_file`); defined on the board the first time a session needs it.
INFLATE_HELPER = """\
def _iz(s,p):
 b=bytearray(512)
 with open(s,'rb') as i:
  with open(p,'wb') as o:
   z=deflate.DeflateIO(i,deflate.ZLIB)
   while 1:
    n=z.readinto(b)
    if not n:break
    o.write(b if n==512 else b[:n])
 os.remove(s)
 return _ih(p)
"""

BOARD_FACTS = """\
import sys,gc
gc.collect()
try:
 import machine;u=binascii.hexlify(machine.unique_id()).decode()
except Exception:
 u=None
print(repr((sys.implementation.version[:3],sys.version,getattr(sys.implementation,'_mpy',None),
 sys.platform,deflate is not None,u,getattr(sys.implementation,'_machine',''),gc.mem_free())))
"""


@dataclass(frozen=True)
class BoardFacts:
    version: tuple[int, int, int]
    version_text: str
    mpy: int | None  # sys.implementation._mpy: bytecode version | sub-version << 8 | arch << 10
    platform: str
    has_deflate: bool
    unique_id: str | None
    machine: str
    free_heap: int  # bytes free in the raw REPL, after a collection

    @property
    def zlib_wbits(self) -> int:
        """The zlib window this board can inflate (`bundle.window_bits`)."""
        return bundle.window_bits(self.free_heap if self.has_deflate else None)

    @property
    def mpy_version(self) -> tuple[int, int] | None:
        """(bytecode version, sub-version) that .mpy files must match, or None if unknown."""
        if self.mpy is None:
            return None
        return self.mpy & 0xFF, (self.mpy >> 8) & 3


class _CountingSerial:
    """Wraps the pyserial object to count the bytes that cross the wire."""

    def __init__(self, port: serial.SerialBase) -> None:
        self._port = port
        self.sent = 0
        self.received = 0
        self.before_write: Callable[[int, bytes], None] | None = None

    def write(self, data: bytes) -> int | None:
        if self.before_write is not None:
            self.before_write(self.sent, data)
        self.sent += len(data)
        return self._port.write(data)

    def read(self, size: int = 1) -> bytes:
        data = self._port.read(size)
        self.received += len(data)
        return data

    def __getattr__(self, name: str):
        return getattr(self._port, name)


class BoardSession:
    """A raw-REPL session on the board at `port`. Use `open_board(port)`."""

    def __init__(self, transport: SerialTransport, port: str) -> None:
        self.port = port
        self._transport = transport
        self._wire = _CountingSerial(transport.serial)
        transport.serial = self._wire
        self._facts: BoardFacts | None = None
        self._defined: set[str] = set()  # bundle helpers this session defined on the board

    def _define(self, helper: str) -> bool:
        """Whether the call must define `helper` first: once per session (globals of the raw REPL
        last until a soft reset, which a session does only as it opens)."""
        first = helper not in self._defined
        self._defined.add(helper)
        return first

    # --- wire ------------------------------------------------------------------------------------

    @property
    def bytes_sent(self) -> int:
        return self._wire.sent

    @property
    def bytes_received(self) -> int:
        return self._wire.received

    def set_before_write(self, hook: Callable[[int, bytes], None] | None) -> None:
        """Call hook(bytes sent so far, data) before each write: for progress display, and for
        tests that cut the power at an exact point of a transfer."""
        self._wire.before_write = hook

    def exec(self, code: str) -> str:
        """Run `code` on the board and return what it printed; a board exception is an OperationError
        carrying its last line (board tracebacks never carry the code, so never a secret)."""
        try:
            out = self._transport.exec(code)
        except TransportExecError as error:
            last = (error.error_output.strip().splitlines() or ["error"])[-1]
            raise OperationError(f"--port {self.port}: the board reported {last}") from None
        except (TransportError, serial.SerialException, OSError) as error:
            raise OperationError(
                f"--port {self.port}: the board stopped answering ({error}); check the connection and retry"
            ) from None
        return out.decode("utf-8", "replace")

    def eval(self, expression: str):
        return ast.literal_eval(self.exec(f"print(repr({expression}))").strip())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._transport.exit_raw_repl()
        with contextlib.suppress(Exception):
            self._transport.close()

    def abandon(self) -> None:
        """Close the port without a word to the board (it is gone, e.g. after a power cut)."""
        with contextlib.suppress(Exception):
            self._transport.serial.close()

    def __enter__(self) -> "BoardSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- board facts -----------------------------------------------------------------------------

    def facts(self, refresh: bool = False) -> BoardFacts:
        """What the board is (read as the session opened; `refresh` reads it again)."""
        if self._facts is None or refresh:
            self._read_facts(self.exec(BOARD_FACTS))
        return self._facts  # type: ignore[return-value]

    def start(self) -> None:
        """Define the helpers and learn the board's facts: one round trip as the session opens."""
        self._read_facts(self.exec(ONBOARD_HELPERS + BOARD_FACTS))

    def _read_facts(self, printed: str) -> None:
        version, *rest = ast.literal_eval(printed.strip())
        self._facts = BoardFacts(tuple(version), *rest)

    def eval_output(self, code: str):
        """Run `code`, which prints one repr(), and return the value."""
        return ast.literal_eval(self.exec(code).strip())

    # --- files -----------------------------------------------------------------------------------

    def makedirs(self, path: str) -> None:
        self.exec(f"_ip({path!r})")

    def remove_tree(self, path: str) -> None:
        self.exec(f"_irm({path!r})")

    def remove_trees(self, paths: list[str]) -> None:
        """Remove each of `paths` (files or folders; absent ones are fine) in one round trip."""
        if paths:
            self.exec(f"for p in {paths!r}:_irm(p)")

    def fresh_folder(self, path: str) -> None:
        """An empty folder at `path` (whatever was there removed), made in one round trip."""
        self.exec(f"_irm({path!r})\n_ip({path!r})")

    def rename(self, source: str, target: str) -> None:
        self.exec(f"os.rename({source!r},{target!r})")

    def read_text(self, path: str) -> str | None:
        """A small text file's contents, or None if absent. Nothing read here goes into a message."""
        return self.eval(f"_ird({path!r})")

    def list_dir(self, path: str) -> list[tuple[str, bool]] | None:
        """[(name, is_dir)] of a folder, or None if it does not exist."""
        found = self.eval(f"_ils({path!r})")
        return None if found is None else [(name, bool(is_dir)) for name, is_dir in found]

    def hash_files(self, paths: list[str]) -> dict[str, str | None]:
        """SHA-256 (hex) of each file computed on the board; None for a missing file."""
        if not paths:
            return {}
        base, names = bundle.common_folder(paths)  # each folder once on the line
        digests = self.eval(f"[_ih({base!r}+p) for p in {names!r}]")
        return dict(zip(paths, digests, strict=True))

    def write_file(self, path: str, data: bytes) -> None:
        """Write `data` to `path`, compressed on the wire when that is shorter, and check the
        SHA-256 the board computes of what it wrote."""
        expected = hashlib.sha256(data).hexdigest()
        facts = self.facts()
        packed = bundle.compress(data, facts.zlib_wbits) if facts.has_deflate else None
        if packed is not None and len(packed) < len(data):
            staging = path + ".z"
            calls = _chunk_calls(staging, packed)
            define = INFLATE_HELPER if self._define("_iz") else ""
            calls[-1] += f"\n{define}print(repr(_iz({staging!r},{path!r})))"
        else:
            calls = _chunk_calls(path, data)
            calls[-1] += f"\nprint(repr(_ih({path!r})))"
        for call in calls[:-1]:
            self.exec(call)
        written = ast.literal_eval(self.exec(calls[-1]).strip())
        if written != expected:
            raise OperationError(
                f"--port {self.port}: {path} did not verify on the board (SHA-256 mismatch); retry"
            )

    def replace_file(self, path: str, data: bytes) -> None:
        """Replace the small file `path` by `data` atomically: written beside it, renamed over it only
        if the board's SHA-256 of the copy matches, and the result checked: one round trip."""
        expected = hashlib.sha256(data).hexdigest()
        temp = path + ".tmp"
        encoded = base64.b64encode(data).decode("ascii")
        code = (
            f"_iw({temp!r},{encoded!r},'wb')\n"
            f"if _ih({temp!r})=={expected!r}:os.rename({temp!r},{path!r})\n"
            f"print(repr(_ih({path!r})))"
        )
        if ast.literal_eval(self.exec(code).strip()) != expected:
            raise OperationError(
                f"--port {self.port}: {path} did not verify on the board (SHA-256 mismatch); retry"
            )

    def send_raw(self, path: str, data: bytes, progress: Progress | None = None) -> None:
        """Write `data` to the file `path` as raw bytes on the wire, a quarter fewer than base64:
        the board reads them from the REPL's stdin and acknowledges each chunk; at most
        `bundle.RECEIVE_WINDOW` bytes are in flight (`bundle.RECEIVE_HELPER`). Ctrl-C bytes go
        escaped (`bundle.escape`), so Ctrl-C still interrupts the board if this host goes away.
        `progress` counts bytes on the wire, escapes included."""
        chunk, window = bundle.RECEIVE_CHUNK, bundle.RECEIVE_WINDOW
        data = bundle.escape(data)
        try:
            self._transport.exec_raw_no_follow(bundle.receive_call(path, len(data), self._define("_ib")))
            self._expect_ack()
            sent = acked = 0
            while acked * chunk < len(data):
                while sent < len(data) and sent - acked * chunk < window:
                    self._wire.write(data[sent : sent + chunk])
                    sent += len(data[sent : sent + chunk])
                self._expect_ack()
                acked += 1
                if progress is not None:
                    progress(min(acked * chunk, len(data)), len(data))
            _out, error = self._transport.follow(READ_TIMEOUT)
        except (TransportError, serial.SerialException, OSError) as error:
            raise OperationError(
                f"--port {self.port}: the board stopped answering ({error}); check the connection and retry"
            ) from None
        if error:
            last = (error.decode("utf-8", "replace").strip().splitlines() or ["error"])[-1]
            raise OperationError(f"--port {self.port}: the board reported {last}")

    def _expect_ack(self) -> None:
        """Read the board's next acknowledgement; anything else means the code stopped (its error
        follows, as after any exec) or the board is gone."""
        got = self._wire.read(1)
        if got == bundle.ACK:
            return
        if not got:
            raise TransportError("no acknowledgement")
        if got == b"\x04":  # the end of the normal output: the error output follows
            error = self._transport.read_until(1, b"\x04", timeout=READ_TIMEOUT).removesuffix(b"\x04")
        else:
            _out, error = self._transport.follow(READ_TIMEOUT)
        last = (error.decode("utf-8", "replace").strip().splitlines() or ["error"])[-1]
        raise OperationError(f"--port {self.port}: the board reported {last}")

    def write_files(self, files: dict[str, bytes], progress: Progress | None = None) -> None:
        """Write every file of `files` {board path: bytes}, creating folders: as one compressed
        stream expanded on the board (`bundle`) when it has `deflate` and that is shorter, else
        file by file; each file's SHA-256, computed on the board, must match. The stream goes as
        raw bytes (`send_raw`), the rest as base64 text. `progress(done, total)` follows the bytes
        the board has taken (of the stream, or of the files one by one)."""
        facts = self.facts()
        packed, entries = (b"", [])
        if len(files) > 1 and facts.has_deflate:
            packed, entries = bundle.pack(files, facts.zlib_wbits)
        if not entries or len(packed) >= sum(len(data) for data in files.values()):
            folders: set[str] = set()
            total, done = sum(len(data) for data in files.values()), 0
            for path in sorted(files):
                folder = path.rsplit("/", 1)[0]
                if folder and folder not in folders:  # one round-trip per folder, not per file
                    self.makedirs(folder)
                    folders.add(folder)
                self.write_file(path, files[path])
                done += len(files[path])
                if progress is not None:
                    progress(done, total)
            return
        self.send_raw(bundle.STAGING, packed, progress)
        written = ast.literal_eval(self.exec(bundle.expand_call(entries, self._define("_ix"))).strip())
        if written == bundle.combined_digest(files, entries):
            return
        on_board = self.hash_files([path for path, _ in entries])  # which one: for the message
        bad = [path for path, _ in entries if on_board[path] != hashlib.sha256(files[path]).hexdigest()]
        culprit = bad[0] if bad else "a file"
        raise OperationError(
            f"--port {self.port}: {culprit} did not verify on the board (SHA-256 mismatch); retry"
        )


def _chunk_calls(path: str, data: bytes) -> list[str]:
    text = base64.b64encode(data).decode("ascii")
    calls = []
    for start in range(0, max(len(text), 1), CHUNK_B64):
        mode = "wb" if start == 0 else "ab"
        calls.append(f"_iw({path!r},{text[start : start + CHUNK_B64]!r},{mode!r})")
    return calls


_MICROPYTHON_SAYS = ("MicroPython", "raw REPL", ">>>", "soft reboot", "Traceback")


def _enter_raw_repl(transport: SerialTransport, soft_reset: bool, timeout: float) -> None:
    """mpremote's enter_raw_repl, tried a second time when what came back was MicroPython talking
    (a board busy booting can miss the first Ctrl-C / Ctrl-A, as mpremote users know; code that
    the Ctrl-C interrupted can have read the Ctrl-A first, e.g. a `send_raw` receiver left by a
    host that went away mid-transfer: its traceback came back)."""
    for attempt in (1, 2):
        heard = io.StringIO()  # enter_raw_repl prints what it received when it fails
        try:
            with capture_stdout(heard):  # not redirect_stdout: boards are opened from several threads
                transport.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout)
            return
        except TransportError:
            said = heard.getvalue()
            if attempt == 2 or not any(mark in said for mark in _MICROPYTHON_SAYS):
                raise


def open_board(
    port: str, *, soft_reset: bool = True, connect_timeout: float = CONNECT_TIMEOUT
) -> BoardSession:
    """Open `port`, enter the raw REPL (soft-resetting the board so a running program stops) and
    install the helper functions. Unreachable or non-MicroPython ports are InputErrors."""
    opening = (TransportError, serial.SerialException, OSError, ValueError)
    try:
        transport = SerialTransport(port, baudrate=115200, timeout=READ_TIMEOUT)  # exclusive: locked
    except opening as error:
        if not port_users.busy(port) or not port_users.wait_until_free(port):
            raise _open_error(port, error) from None
        try:  # the holder let go within the settling time
            transport = SerialTransport(port, baudrate=115200, timeout=READ_TIMEOUT)
        except opening as again:
            raise _open_error(port, again) from None
    try:
        _enter_raw_repl(transport, soft_reset, connect_timeout)
    except (TransportError, serial.SerialException, OSError) as error:
        with contextlib.suppress(Exception):
            transport.close()
        others = port_users.users(port)  # a program without a lock reading the same port
        if others:
            raise InputError(port_users.in_use_message(port, others)) from None
        raise InputError(
            f"--port: {port!r} does not answer as a MicroPython board ({_short(error)}); "
            "flash MicroPython first (iotcprov flash) or pick another port"
        ) from None
    session = BoardSession(transport, port)
    try:
        session.start()
    except BaseException:
        session.close()
        raise
    return session


Counted = TypeVar("Counted")  # a result dataclass with bytes_sent, bytes_received and seconds


def run_counted(
    port: str, work: Callable[[BoardSession], Counted], connect: Callable[[str], BoardSession] = open_board
) -> Counted:
    """Open `port`, run `work(session)`, and report its result with the whole session's wire bytes
    and time, connecting included (what a user waits for)."""
    started = time.monotonic()
    with connect(port) as session:
        result = work(session)
        return dataclasses.replace(
            result,
            bytes_sent=session.bytes_sent,
            bytes_received=session.bytes_received,
            seconds=time.monotonic() - started,
        )


def _open_error(port: str, error: BaseException) -> InputError:
    if port_users.busy(port) or port_users.users(port):
        return InputError(port_users.in_use_message(port))
    return InputError(
        f"--port: cannot open {port!r} ({_short(error)}); "
        "check the cable, or list boards with `iotcprov ports`"
    )


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:120]
