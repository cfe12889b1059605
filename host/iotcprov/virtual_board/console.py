"""The board's console log: everything it printed, kept by the supervisor whether or not a client
has the port open, with waits on regular expressions instead of sleeps."""

import codecs
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

TAIL_CHARS = 2000


class ConsoleLog:
    def __init__(self, sink: Path | None = None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._changed = threading.Condition()
        self._sink = open(sink, "ab") if sink else None  # noqa: SIM115 - closed in close()

    def append(self, data: bytes) -> None:
        if self._sink:
            self._sink.write(data)
            self._sink.flush()
        text = self._decoder.decode(data)
        if not text:
            return
        with self._changed:
            self._text += text
            self._changed.notify_all()

    def close(self) -> None:
        if self._sink:
            self._sink.close()
            self._sink = None

    def text(self) -> str:
        with self._changed:
            return self._text

    def mark(self) -> int:
        with self._changed:
            return len(self._text)

    def tail(self, chars: int = TAIL_CHARS) -> str:
        with self._changed:
            return self._text[-chars:]

    def wait_for(
        self, pattern: str | re.Pattern, timeout: float = 30.0, since: int | None = None,
        failed: Callable[[], str | None] = lambda: None,
    ) -> re.Match:
        """The first match of `pattern` in the log (from offset `since`), waiting up to `timeout` s.

        Raises TimeoutError with the log's tail, or RuntimeError as soon as `failed()` returns a reason.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                start = since or 0
                match = regex.search(self._text, start)
                if match:
                    return match
                reason = failed()
                if reason:
                    raise RuntimeError(f"{reason}; last output:\n{self._text[-TAIL_CHARS:]}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no console output matched {regex.pattern!r} within {timeout:g} s; "
                        f"last output:\n{self._text[-TAIL_CHARS:]}"
                    )
                self._changed.wait(min(remaining, 0.5))
