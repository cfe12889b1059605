"""Capturing what a library prints (mpremote, esptool), for the calling thread only.

`contextlib.redirect_stdout` swaps `sys.stdout` for the whole process: two threads using it at
once (a factory line opening several boards) can leave `sys.stdout` pointing at one thread's
buffer for good, and every later line of output vanishes. `capture_stdout` installs one proxy
while any thread captures; it sends each thread's writes to that thread's buffer, or on to the
real stream, and takes itself out again when the last capture ends.
"""

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_targets: dict[int, io.StringIO] = {}


class _PerThreadStdout:
    def __init__(self, stream) -> None:
        self.stream = stream

    def _target(self):
        return _targets.get(threading.get_ident()) or self.stream

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


@contextmanager
def capture_stdout(buffer: io.StringIO | None = None) -> Iterator[io.StringIO]:
    """What this thread prints inside the block goes to `buffer` (a new StringIO by default)."""
    buffer = io.StringIO() if buffer is None else buffer
    ident = threading.get_ident()
    with _lock:
        if not isinstance(sys.stdout, _PerThreadStdout):
            sys.stdout = _PerThreadStdout(sys.stdout)
        proxy = sys.stdout
        _targets[ident] = buffer
    try:
        yield buffer
    finally:
        with _lock:
            _targets.pop(ident, None)
            if not _targets and sys.stdout is proxy:
                sys.stdout = proxy.stream
