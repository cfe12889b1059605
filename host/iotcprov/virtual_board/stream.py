"""Byte-stream helpers of the supervisor: the board's in-band events, and UART pacing."""

EVENT_START = b"\x1b_vb:"
EVENT_END = b"\x1b\\"
MAX_EVENT = 64


class EventFilter:
    """Splits the board's console stream into text and events.

    The stand-ins report to the supervisor with `ESC _ vb:NAME ESC \\` (an APC sequence, which
    terminals ignore too). Events stay in order with the text around them; a sequence split across
    reads is held back until complete.
    """

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes | str]]:
        buffer = self._held + data
        self._held = b""
        parts: list[tuple[str, bytes | str]] = []
        while buffer:
            start = buffer.find(EVENT_START)
            if start < 0:
                keep = _partial_prefix(buffer, EVENT_START)
                text, self._held = buffer[: len(buffer) - keep], buffer[len(buffer) - keep :]
                if text:
                    parts.append(("text", text))
                break
            if start:
                parts.append(("text", buffer[:start]))
            end = buffer.find(EVENT_END, start + len(EVENT_START))
            if end < 0:
                if len(buffer) - start > MAX_EVENT:  # not one of ours: let it through
                    parts.append(("text", buffer[start : start + len(EVENT_START)]))
                    buffer = buffer[start + len(EVENT_START) :]
                    continue
                self._held = buffer[start:]
                break
            parts.append(("event", buffer[start + len(EVENT_START) : end].decode("ascii", "replace")))
            buffer = buffer[end + len(EVENT_END) :]
        return parts


def _partial_prefix(buffer: bytes, marker: bytes) -> int:
    """Length of the longest tail of `buffer` that is a proper prefix of `marker`."""
    for size in range(min(len(marker) - 1, len(buffer)), 0, -1):
        if buffer.endswith(marker[:size]):
            return size
    return 0


class Pacer:
    """Lets bytes through no faster than a UART at `baud` (8N1: baud/10 bytes per second).

    baud 0 means unthrottled. Bytes go in slices of a few milliseconds' worth.
    """

    SLICE_S = 0.005
    UNTHROTTLED_CHUNK = 65536

    def __init__(self, baud: int) -> None:
        self.rate = baud / 10 if baud else 0.0
        self._next = 0.0

    def budget(self, now: float) -> int:
        """How many bytes may pass now (0: wait for `delay`)."""
        if not self.rate:
            return self.UNTHROTTLED_CHUNK
        if now < self._next:
            return 0
        return max(1, int(self.rate * self.SLICE_S))

    def spend(self, count: int, now: float) -> None:
        if self.rate and count:
            # Lateness of up to one slice is caught up, so the average stays at the line rate.
            self._next = max(self._next, now - self.SLICE_S) + count / self.rate

    def delay(self, now: float) -> float:
        return max(0.0, self._next - now) if self.rate else 0.0
