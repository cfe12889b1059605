"""A serial line between esptool and the emulated ROM loader: a local TCP relay that carries bytes
at a UART's speed (10 bits per byte: start, 8 data, stop) and changes speed when the loader
acknowledges CHANGE_BAUDRATE, as a CP210x/CH340 bridge and the chip both do after esptool's
`change_baud`. Every new connection starts at the line's initial speed, as a chip reset into its
ROM loader does.

`reliable_up_to` makes the line fail above a speed (a long cable, a marginal bridge): from the
first byte the loader sends at a faster rate, the host receives noise instead, so esptool stops
with "Invalid head of packet" as it does on a real line that cannot hold the rate.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable

SLIP_END, SLIP_ESC = 0xC0, 0xDB
CHANGE_BAUDRATE = 0x0F
BITS_PER_BYTE = 10
# The pumps send at most this much of a second's worth of bytes at once, so that the timing of a
# transfer follows the line's speed closely.
SLICE_SECONDS = 0.002


class _Frames:
    """Splits a byte stream into SLIP frames (decoded), calling `on_frame` for each complete one."""

    def __init__(self, on_frame: Callable[[bytes], None]) -> None:
        self._on_frame = on_frame
        self._frame: bytearray | None = None
        self._escape = False

    def feed(self, data: bytes) -> None:
        for byte in data:
            if byte == SLIP_END:
                if self._frame:
                    self._on_frame(bytes(self._frame))
                self._frame = bytearray()
            elif self._frame is None:
                continue
            elif self._escape:
                self._escape = False
                self._frame.append(0xC0 if byte == 0xDC else 0xDB)
            elif byte == SLIP_ESC:
                self._escape = True
            else:
                self._frame.append(byte)


class _Connection:
    """One esptool connection: two pumps sharing the line's current speed."""

    def __init__(self, link: "SerialLink", client: socket.socket) -> None:
        self.link = link
        self.client = client
        self.loader = socket.create_connection(link.upstream)
        self.loader.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.baud = link.baud
        self.requested: int | None = None
        self.noisy = False
        link.record(self.baud)
        self.host_frames = _Frames(self._host_frame)
        self.loader_frames = _Frames(self._loader_frame)
        self.threads = [
            threading.Thread(target=self._pump, args=(client, self.loader, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.loader, client, False), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _host_frame(self, frame: bytes) -> None:
        if len(frame) >= 12 and frame[0] == 0x00 and frame[1] == CHANGE_BAUDRATE:
            self.requested = int.from_bytes(frame[8:12], "little")

    def _loader_frame(self, frame: bytes) -> None:
        if len(frame) >= 2 and frame[0] == 0x01 and frame[1] == CHANGE_BAUDRATE and self.requested:
            self.baud, self.requested = self.requested, None
            self.link.record(self.baud)

    def _pump(self, source: socket.socket, target: socket.socket, from_host: bool) -> None:
        free_at = time.monotonic()  # when the transmitter has sent everything so far
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while data:
                    rate = self.baud / BITS_PER_BYTE
                    size = max(1, int(rate * SLICE_SECONDS))
                    piece, data = data[:size], data[size:]
                    free_at = max(free_at, time.monotonic()) + len(piece) / rate
                    delay = free_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # the line is busy until the last bit is out
                    if from_host:
                        self.host_frames.feed(piece)
                        target.sendall(piece)
                        continue
                    limit = self.link.reliable_up_to
                    if limit is not None and self.baud > limit:
                        self.noisy = True
                        target.sendall(bytes(len(piece)))  # line noise: zero bytes, no frame
                        continue
                    target.sendall(piece)
                    self.loader_frames.feed(piece)  # the speed changes after the acknowledgement
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for end in (self.client, self.loader):
            with contextlib.suppress(OSError):
                end.close()


class SerialLink:
    """Relays `socket://127.0.0.1:<port>` (its `url`) to the loader at `upstream` as a serial line
    at `baud`. `bauds` lists the speed of every connection at its start and after each change."""

    def __init__(
        self, upstream: tuple[str, int], baud: int = 115200, reliable_up_to: int | None = None
    ) -> None:
        self.upstream = upstream
        self.baud = baud
        self.reliable_up_to = reliable_up_to
        self.bauds: list[int] = []
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def record(self, baud: int) -> None:
        with self._lock:
            self.bauds.append(baud)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connections.append(_Connection(self, client))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._server.close()
        for connection in self._connections:
            connection.close()

    def __enter__(self) -> "SerialLink":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
