"""What both dashboards share: pages and static files from package data, server-sent events,
and the operator token check.

Pages are static HTML files; their scripts fetch JSON from `data/...` and follow
`stream?...` (server-sent events). Control actions (`ops/...`, POST) need the operator token in
the `X-Dashboard-Token` header: a cross-site form cannot set a header, so a page elsewhere in the
browser cannot act through an operator's dashboard either.
"""

from __future__ import annotations

import hmac
import html
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
TOKEN_HEADER = "X-Dashboard-Token"
KEEPALIVE = 15.0  # seconds between comment lines on an idle event stream (proxies, dead peers)

# Strict: the pages load only their own scripts and styles, and nothing is framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler answering one HTML page of static/."""
    path = STATIC_DIR / name

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {**SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8"}
        return web.FileResponse(path, headers=headers)

    return handler


def layout_page(
    layout: str, name: str, title: str, nav: list[tuple[str, str]], current: str | None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler answering static/`name` (a page's <main>) inside static/`layout`, the frame its
    dashboard's pages share: `title`, the script `name`.js, and the navigation `nav` ([(href,
    label)]) with `current` marked as this page. Composed once, here."""
    marked = ' aria-current="page"'
    items = "".join(
        f'        <li><a href="{href}"{marked if href == current else ""}>{html.escape(label)}</a></li>\n'
        for href, label in nav
    )
    text = (
        (STATIC_DIR / layout)
        .read_text(encoding="utf-8")
        .replace("<!-- title -->", html.escape(title))
        .replace("<!-- script -->", f"{Path(name).stem}.js")
        .replace("<!-- nav -->", items)
        .replace("<!-- main -->", (STATIC_DIR / name).read_text(encoding="utf-8").rstrip("\n"))
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=text, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)

    return handler


def static_routes() -> list[web.RouteDef]:
    return [web.static("/static", STATIC_DIR, append_version=False)]


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def json_answer(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, headers={"Cache-Control": "no-store"})


def error(status: int, message: str) -> web.Response:
    return json_answer({"error": message}, status)


def is_operator(request: web.Request, token: str) -> bool:
    given = request.headers.get(TOKEN_HEADER, "")
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


async def read_json(request: web.Request) -> dict:
    """The request's JSON object body; HTTPBadRequest (JSON) otherwise."""
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body: not JSON"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body: give a JSON object"}), content_type="application/json"
        )
    return body


class EventStream:
    """One server-sent event stream to a browser."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
                "X-Content-Type-Options": "nosniff",
            }
        )

    async def open(self) -> EventStream:
        await self.response.prepare(self.request)
        await self.response.write(b"retry: 2000\n\n")
        return self

    async def send(self, event: str, data: Any) -> None:
        text = json.dumps(data, separators=(",", ":"))
        await self.response.write(f"event: {event}\ndata: {text}\n\n".encode())

    async def keepalive(self) -> None:
        await self.response.write(b": keep-alive\n\n")
