"""The emulator's one HTTP application (aiohttp), served on the admin listener.

Everything HTTP lives in this application: the admin API (`admin_http.py`) at the root, and the
sub-applications mounted below it by prefix (the IoT Central API at `/api`, the dashboard at
`/dashboard`). `serve` runs it on a listener of the emulator's own asyncio loop, plain HTTP or
TLS with the emulator's server certificate.

aiohttp bounds a request body (`client_max_size`) but not the time a client takes to send its
headers; `_HeaderDeadline` closes a connection whose first request is not complete within
READ_TIMEOUT, answering 408, so a stalled client cannot hold a connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from iotcprov.dashboard import emulator as dashboard
from iotcprov.emulator import central_api
from iotcprov.emulator.admin_http import MAX_BODY, READ_TIMEOUT, AdminApi
from iotcprov.emulator.control import Control

KEEPALIVE_TIMEOUT = 15.0  # seconds an idle kept-alive connection stays open


def build_app(control: Control, dashboard_token: str | None = None) -> web.Application:
    """The admin API; the dashboard too unless `dashboard_token` is None (--no-dashboard)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_json_errors])
    app.add_routes(AdminApi(control).route_table())
    # Sub-applications mount here: app.add_subapp("/api", ...), app.add_subapp("/dashboard", ...).
    if dashboard_token is not None:
        app.add_subapp("/dashboard", dashboard.build(control, dashboard_token))
    app.add_subapp("/api", central_api.build(control))
    return app


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """404 and 405 from routing answer JSON like every admin error: {"error": "..."}."""
    _mark_headers_seen(request)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.json_response({"error": f"no such endpoint {request.path}"}, status=404)
    except web.HTTPMethodNotAllowed:
        return web.json_response({"error": f"{request.method} is not allowed on {request.path}"}, status=405)


def _mark_headers_seen(request: web.Request) -> None:
    deadline = _DEADLINES.pop(request.transport, None)
    if deadline is not None:
        deadline.cancel()


# transport -> the timer that answers 408 unless the connection's first request arrives in time
_DEADLINES: dict[asyncio.BaseTransport | None, asyncio.TimerHandle] = {}


class Listener:
    """An aiohttp application served on asyncio servers (plain or TLS) the emulator opens."""

    def __init__(self, app: web.Application) -> None:
        self.runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT)

    async def setup(self) -> None:
        await self.runner.setup()

    def protocol_factory(self) -> Callable[[], asyncio.Protocol]:
        server = self.runner.server
        assert server is not None, "setup() first"
        return lambda: _HeaderDeadline(server())

    async def cleanup(self) -> None:
        await self.runner.cleanup()


class _HeaderDeadline(asyncio.Protocol):
    """aiohttp's protocol, with a deadline on the connection's first request (see the module)."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        _DEADLINES[transport] = asyncio.get_running_loop().call_later(READ_TIMEOUT, _expire, transport)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        deadline = _DEADLINES.pop(self.transport, None)
        if deadline is not None:
            deadline.cancel()
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _expire(transport: asyncio.BaseTransport) -> None:
    """The first request's headers did not arrive in time: answer 408 and close."""
    _DEADLINES.pop(transport, None)
    if transport.is_closing():
        return
    body = json.dumps({"error": f"request not complete within {READ_TIMEOUT:g} s"}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    assert isinstance(transport, asyncio.WriteTransport)
    transport.write(head + body)
    transport.close()
