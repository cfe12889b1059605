"""The demo's timeline: what happened, when, and where (host, cloud = the emulator, board).

Events come from two threads (the step runner and the console follower), so emitting is locked and
every event carries its time since the demo started.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HOST, CLOUD, BOARD = "host", "cloud", "board"


@dataclass(frozen=True)
class DemoEvent:
    seconds: float  # since the demo started
    source: str  # HOST, CLOUD or BOARD
    step: str  # the step it belongs to, e.g. "registration"
    text: str  # one line for a person; never a key, token or password
    milestone: bool = False  # a step's result (shown with a check mark)
    data: dict = field(default_factory=dict)  # the same facts for machines (--json)

    def as_dict(self) -> dict:
        return {
            "seconds": round(self.seconds, 3),
            "source": self.source,
            "step": self.step,
            "text": self.text,
            "milestone": self.milestone,
            "data": self.data,
        }


class Timeline:
    """Stamps events and hands them to `on_event` one at a time, in order."""

    def __init__(self, on_event: Callable[[DemoEvent], None] | None = None) -> None:
        self._on_event = on_event or (lambda event: None)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.events: list[DemoEvent] = []

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def emit(
        self, source: str, step: str, text: str, *, milestone: bool = False, **data: object
    ) -> DemoEvent:
        with self._lock:
            event = DemoEvent(self.elapsed(), source, step, text, milestone, dict(data))
            self.events.append(event)
            self._on_event(event)
        return event
