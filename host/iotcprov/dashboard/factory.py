"""The factory line's dashboard (`iotcprov factory run --dashboard`): one tile per port, the run's
counts and boards per hour, the manifest's recent boards; big type for a screen across the room.

`FactoryDashboard` is an event sink like the terminal views (factory/view.py), called from the
station threads; it serves from a thread of its own with its own asyncio loop, so the line's
threads never wait on a browser. Its state is the terminal live view's (the same rules for what
a port shows), plus the recent boards; events carry no secret (factory/events.py), and the
snapshot is built field by field all the same.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from pathlib import Path

from aiohttp import web

from iotcprov.dashboard import web as dw
from iotcprov.errors import InputError, OperationError
from iotcprov.factory import events as ev
from iotcprov.factory.view import LiveView

RECENT_SHOWN = 12
COALESCE = 0.25  # seconds a stream waits for more events before sending the line's state
FINISHED = (ev.DONE, ev.FAILED, ev.SKIPPED)


def parse_address(text: str, field: str = "--dashboard") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InputError(f"{field}: give HOST:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free one)")
    return host.strip("[]"), int(port)


def split_fix(error: str) -> tuple[str, str | None]:
    """Our errors say what went wrong, then what to do after '; ': the tile shows both apart."""
    problem, sep, fix = error.partition("; ")
    return (problem, fix) if sep else (error, None)


class LineState(LiveView):
    """The live view's stations and tally, readable as JSON, plus the recent finished boards."""

    def __init__(self, title: str) -> None:
        super().__init__(console=None, title=title)  # never drawn on a terminal
        self.recent: collections.deque[dict] = collections.deque(maxlen=RECENT_SHOWN)
        self.started_at = time.time()
        self.ended = False

    def on_event(self, event: ev.Event) -> None:
        super().on_event(event)
        with self._lock:
            if event.name in FINISHED:
                self.recent.appendleft(
                    {
                        "time": event.at,
                        "port": event.port,
                        "device": event.get("device"),
                        "board": event.get("board"),
                        "result": event.name,
                        "stage": event.get("stage"),
                        "seconds": event.get("seconds"),
                    }
                )
            elif event.name == ev.RUN_ENDED:
                self.ended = True

    def load_recent(self, records: list[dict]) -> None:
        with self._lock:
            for record in records[-RECENT_SHOWN:]:
                self.recent.appendleft(record)

    def snapshot(self) -> dict:
        now = time.monotonic()
        with self._lock:
            tiles = []
            for station in self._stations.values():
                stage = station.stage
                error, fix = split_fix(station.note) if station.result == ev.FAILED else (None, None)
                tiles.append(
                    {
                        "port": station.port,
                        "state": stage,
                        "result": station.result,
                        "board": station.board,
                        "device": station.device,
                        "stage_number": ev.STAGES.index(stage) + 1 if stage in ev.STAGES else None,
                        "stages": len(ev.STAGES),
                        "percent": station.percent,
                        "sent": station.sent,
                        "elapsed": round(now - station.since, 1) if station.result is None else None,
                        "note": None if station.result == ev.FAILED else station.note or None,
                        "error": error,
                        "fix": fix,
                    }
                )
            tally = self.tally
            return {
                "title": self._title,
                "tiles": tiles,
                "counts": {
                    "done": tally.done,
                    "failed": tally.failed,
                    "skipped": tally.skipped,
                    "left": tally.pending,
                    "per_hour": round(tally.rate(), 1),
                },
                "recent": list(self.recent),
                "ended": self.ended,
            }


class FactoryDashboard:
    """Serves the line's dashboard on `address` while the run lasts (a context manager)."""

    def __init__(self, title: str, address: str = "127.0.0.1:0", manifest: str | Path | None = None) -> None:
        self.host, self.port = parse_address(address)
        self.state = LineState(title)
        self.manifest = manifest
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._waiters: set[asyncio.Event] = set()

    # ------------------------------------------------------------ the event sink
    def on_event(self, event: ev.Event) -> None:
        self.state.on_event(event)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    # ------------------------------------------------------------ serving
    def app(self) -> web.Application:
        app = web.Application(middlewares=[dw.security_headers])
        app.add_routes(
            [
                web.get("/", dw.page("factory.html")),
                *dw.static_routes(),
                web.get("/data/line", self._line),
                web.get("/stream", self._stream),
            ]
        )
        return app

    async def _line(self, request: web.Request) -> web.Response:
        return dw.json_answer(self.state.snapshot())

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        stream = await dw.EventStream(request).open()
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            await stream.send("line", self.state.snapshot())
            while True:
                try:
                    await asyncio.wait_for(waiter.wait(), dw.KEEPALIVE)
                except TimeoutError:
                    await stream.keepalive()
                    continue
                await asyncio.sleep(COALESCE)
                waiter.clear()
                await stream.send("line", self.state.snapshot())
        finally:
            self._waiters.discard(waiter)

    def start(self) -> str:
        self._load_recent()
        self._thread = threading.Thread(target=self._serve, name="factory-dashboard", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            raise self._failure
        return self.url

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(self.app(), access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port)
            try:
                loop.run_until_complete(site.start())
            except OSError as error:
                where = f"{self.host}:{self.port}"
                self._failure = OperationError(f"--dashboard: cannot listen on {where}: {error.strerror}")
                return
            port = site._server.sockets[0].getsockname()[1]  # port 0: the one the system picked
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"http://{host}:{port}/"
            self._loop = loop
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
        finally:
            self._ready.set()
            loop.close()

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _load_recent(self) -> None:
        """The manifest's latest finished boards, so a restarted run's screen is not empty."""
        if self.manifest is None:
            return
        from iotcprov.factory.manifest import open_existing

        try:
            with open_existing(self.manifest) as manifest:
                records = [r for r in manifest.records() if r.status in ("done", "failed")]
        except (InputError, OperationError):
            return  # a first run: the line creates the manifest
        records.sort(key=lambda r: r.finished_at or r.updated_at or "")
        self.state.load_recent(
            [
                {
                    "time": None,
                    "when": r.finished_at or r.updated_at,
                    "port": r.port,
                    "device": r.device_id,
                    "board": r.board_id,
                    "result": r.status,
                    "stage": r.stage,
                    "seconds": None,
                }
                for r in records
            ]
        )

    def __enter__(self) -> FactoryDashboard:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
