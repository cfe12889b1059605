"""`iotcprov emulator start`: run the server in this process until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from iotcprov.emulator.server import MAX_HANDSHAKES, EmulatorServer, Endpoint
from iotcprov.emulator.session import Config
from iotcprov.errors import InputError


def serve(
    data_dir: Path,
    dps: str = "localhost:0",
    hub: str = "localhost:0",
    admin: str = "127.0.0.1:0",
    hub_name: str = "localhost",
    extra_names: list[str] | None = None,
    retry_after: int = 1,
    polls_before_assigned: int = 0,
    rate_per_minute: int | None = None,
    max_handshakes: int | None = None,
    on_ready: Callable[[dict], None] | None = None,
    stop_on_stdin_eof: bool = False,
    central: str = "localhost:0",
    dashboard: bool = True,
    auto_approve: bool = True,
) -> None:
    """Start the emulator, call `on_ready(info)` once it listens, serve until a stop signal."""
    for field, value in (("--retry-after", retry_after), ("--polls", polls_before_assigned)):
        if value < 0:
            raise InputError(f"{field}: must be 0 or more")
    if rate_per_minute is not None and rate_per_minute < 1:
        raise InputError(f"--dps-rate: {rate_per_minute} is not a positive number of registrations")
    max_handshakes = MAX_HANDSHAKES if max_handshakes is None else max_handshakes
    if max_handshakes < 1:
        raise InputError(f"--max-handshakes: {max_handshakes} is not a positive number")
    config = Config(
        hub_name=hub_name,
        dps_retry_after=retry_after,
        dps_polls_before_assigned=polls_before_assigned,
        dps_rate_per_minute=rate_per_minute,
        auto_approve=auto_approve,
    )
    server = EmulatorServer(
        data_dir,
        Endpoint.parse(dps, "--dps"),
        Endpoint.parse(hub, "--hub"),
        Endpoint.parse(admin, "--admin"),
        extra_names,
        config,
        max_handshakes,
        Endpoint.parse(central, "--central"),
        dashboard,
    )
    asyncio.run(_main(server, on_ready or _print_line, stop_on_stdin_eof))


def _print_line(info: dict) -> None:
    print(json.dumps({k: v for k, v in info.items() if k != "pid"}), flush=True)


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when stdin closes: a parent that dies (a crashed test run) takes the emulator along."""
    while sys.stdin.buffer.read(4096):
        pass
    loop.call_soon_threadsafe(stop.set)


async def _main(server: EmulatorServer, on_ready: Callable[[dict], None], stop_on_stdin_eof: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no signal handlers in asyncio: Ctrl-C arrives as KeyboardInterrupt there
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        info = await server.start()
    except BaseException:
        server.store.close()
        raise
    if stop_on_stdin_eof:
        # only once started: a thread blocked on stdin at exit aborts the interpreter, and the
        # abort's message would replace the refusal as the last line of the log
        threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
    # the operator token goes in the start line only: not in /info, not in the endpoints file
    on_ready({**info, "dashboard_token": server.dashboard_token} if server.dashboard_token else info)
    try:
        await stop.wait()
    finally:
        await server.stop()
        print("iotcprov emulator: stopped", file=sys.stderr, flush=True)
