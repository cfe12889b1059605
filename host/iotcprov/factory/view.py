"""What the technician sees: a live table (rich) on a terminal, plain lines otherwise.

Both are event sinks (`view.on_event(event)`), called from the station threads. The live view
has a row per port (board, device, stage, progress, time), the totals with boards per hour, and
the latest failures with their reasons. The plain view prints one line per event in the style of
the firmware's status lines: `HH:MM:SS PORT EVENT key=value ... [reason=free text]`.
"""

import threading
import time
from dataclasses import dataclass, field

from iotcprov.board.monitor import STATUS_PREFIX
from iotcprov.factory import events as ev
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

FAILURES_SHOWN = 6
FREE_TEXT_FIELDS = ("reason", "error", "line")


@dataclass
class _Station:
    port: str
    board: str | None = None
    device: str | None = None
    stage: str = "waiting"
    sent: int = 0
    percent: int | None = None  # of the stage's transfer (flash, deploy), when known
    since: float = field(default_factory=time.monotonic)
    note: str = ""
    result: str | None = None  # done | failed | skipped | no ids


class _Tally:
    """Totals over this run, from events alone (the view never reads the manifest)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = self.failed = self.skipped = 0
        self.pending = 0
        self.failures: list[str] = []

    def update(self, event: ev.Event) -> None:
        if event.name == ev.RUN_STARTED:
            self.pending = (event.get("counts") or {}).get("pending", 0)
        elif event.name == ev.CLAIMED and event.get("attempt") == 1:
            self.pending = max(0, self.pending - 1)
        elif event.name == ev.DONE:
            self.done += 1
        elif event.name == ev.SKIPPED:
            self.skipped += 1
        elif event.name == ev.FAILED:
            self.failed += 1
            who = event.get("device") or event.get("board") or "board"
            self.failures.append(f"{event.port} {who} at {event.get('stage')}: {event.get('error')}")

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done * 3600.0 / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"done {self.done} · failed {self.failed} · skipped {self.skipped} · left {self.pending} · "
            f"{self.rate():.0f} boards/h"
        )


def _value(value: object) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


def plain_line(event: ev.Event) -> str:
    """One event as one line: `HH:MM:SS PORT EVENT key=value ... reason=free text`."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
    fields = {k: v for k, v in event.fields.items() if not isinstance(v, dict | list)}
    free = [(k, fields.pop(k)) for k in FREE_TEXT_FIELDS if k in fields]
    words = [stamp, event.port or "-"]
    if event.name != ev.STAGE:  # `PORT stage=deploy ...` says it already
        words.append(event.name.replace(" ", "-"))
    words += [f"{k}={_value(v)}" for k, v in fields.items()]
    words += [f"{k}={v}" for k, v in free]
    return " ".join(words)


class PlainView:
    """Plain lines on a stream (not a terminal, or --plain)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._lock = threading.Lock()
        self.tally = _Tally()

    def on_event(self, event: ev.Event) -> None:
        if event.name == ev.PROGRESS:
            return
        with self._lock:
            self.tally.update(event)
            self._console.out(plain_line(event), highlight=False)

    def __enter__(self) -> "PlainView":
        return self

    def __exit__(self, *exc_info) -> None:
        pass


class LiveView:
    """The live table on a terminal."""

    def __init__(self, console: Console, title: str) -> None:
        self._console = console
        self._title = title
        self._lock = threading.Lock()
        self._stations: dict[str, _Station] = {}
        self.tally = _Tally()
        self._live: Live | None = None

    def on_event(self, event: ev.Event) -> None:
        with self._lock:
            self.tally.update(event)
            if event.port is None:
                return
            station = self._stations.setdefault(event.port, _Station(event.port))
            self._apply(station, event)

    @staticmethod
    def _apply(station: _Station, event: ev.Event) -> None:
        name = event.name
        if name in (ev.BOARD, ev.STAGE) and station.result is not None:
            # a new board at this port: start its row afresh
            station.board = station.device = None
            station.result, station.note = None, ""
            station.since = time.monotonic()
        if event.get("board"):
            station.board = event.get("board")
        if event.get("device"):
            station.device = event.get("device")
        if name == ev.STAGE:
            station.stage, station.sent, station.percent = event.get("stage"), 0, None
        elif name == ev.PROGRESS:
            station.sent = event.get("sent", 0)
            if event.get("percent") is not None:
                station.percent = event.get("percent")
        elif name == ev.STATUS:
            station.note = str(event.get("line", "")).removeprefix(STATUS_PREFIX)
        elif name in (ev.DONE, ev.FAILED, ev.SKIPPED, ev.NO_IDS):
            station.result = name
            station.stage = name
            station.note = str(event.get("error") or event.get("reason") or event.get("fingerprint") or "")
        elif name == ev.SWAP:  # the finished board's row stays, with what the station waits for
            station.note = str(event.get("reason", ""))
        elif name in (ev.WAITING, ev.REMOVED):
            station.board = station.device = station.result = None
            station.stage, station.note = "waiting", "plug in a board"
            station.since = time.monotonic()
        elif name == ev.STATION_ENDED and station.result is None:
            station.stage = "ended"

    def __rich__(self) -> Group:
        with self._lock:
            table = Table(title=self._title, expand=True, title_justify="left")
            for column in ("port", "board", "device", "stage", "progress", "time", "note"):
                table.add_column(column, overflow="fold", no_wrap=column != "note")
            for station in self._stations.values():
                style = {"done": "green", "failed": "bold red", "skipped": "yellow"}.get(station.result or "")
                progress = f"{station.sent / 1024:.1f} KB" if station.sent else ""
                if station.percent is not None:
                    progress = f"{station.percent}% {progress}".strip()
                seconds = f"{time.monotonic() - station.since:.0f} s" if station.result is None else ""
                table.add_row(
                    station.port, station.board or "", station.device or "", station.stage, progress, seconds,
                    station.note, style=style,
                )  # fmt: skip
            parts = [table, Text(self.tally.line(), style="bold")]
            for failure in self.tally.failures[-FAILURES_SHOWN:]:
                parts.append(Text(f"failed: {failure}", style="red"))
            return Group(*parts)

    def __enter__(self) -> "LiveView":
        self._live = Live(
            self, console=self._console, refresh_per_second=4, redirect_stdout=False, redirect_stderr=False
        )
        self._live.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._live is not None:
            self._live.stop()


def make_view(console: Console, title: str, plain: bool = False) -> PlainView | LiveView:
    """The live table on a terminal, plain lines otherwise (or when asked)."""
    if plain or not console.is_terminal:
        return PlainView(console)
    return LiveView(console, title)
