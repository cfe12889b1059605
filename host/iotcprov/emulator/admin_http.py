"""The admin HTTP JSON API (documented in docs/emulator.md) as aiohttp routes.

Bodies and answers are JSON. Routes map one-to-one onto `Control`; `web.py` serves them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from iotcprov.emulator import jsonbody
from iotcprov.emulator.control import Control, ControlError

MAX_BODY = 4 * 1024 * 1024
MAX_BODY_DEPTH = 32  # JSON nesting; deeper would exhaust the parser's recursion
CREATING_PATHS = ("/groups", "/enrollments", "/faults", "/tokens")  # POST there answers 201
READ_TIMEOUT = 5.0  # seconds to receive a whole request; a client that stalls loses the connection


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ControlError(400, f"{field}: give true or false")
    return value


class AdminApi:
    def __init__(self, control: Control) -> None:
        self.control = control
        c = control
        # (method, aiohttp path) -> handler(path parameters, query, body)
        self.routes: list[tuple[str, str, Any]] = [
            ("GET", r"/info", lambda m, q, b: c.info()),
            ("GET", r"/groups", lambda m, q, b: c.groups()),
            (
                "POST",
                r"/groups",
                lambda m, q, b: c.create_group(
                    b.get("name"),
                    b.get("attestation"),
                    b.get("primary_key"),
                    b.get("secondary_key"),
                    b.get("ca_cert"),
                ),
            ),
            (
                "POST",
                r"/groups/{name}/verify",
                lambda m, q, b: c.verify_group(m["name"], b.get("cert")),
            ),
            (
                "POST",
                r"/groups/{name}/enabled",
                lambda m, q, b: c.set_group_enabled(m["name"], _flag(b.get("enabled"), "enabled")),
            ),
            ("GET", r"/enrollments", lambda m, q, b: c.enrollments()),
            (
                "POST",
                r"/enrollments",
                lambda m, q, b: c.enroll(
                    b.get("device_id"),
                    b.get("attestation"),
                    b.get("primary_key"),
                    b.get("secondary_key"),
                    b.get("cert"),
                ),
            ),
            (
                "POST",
                r"/enrollments/{id}/enabled",
                lambda m, q, b: c.set_enrollment_enabled(m["id"], _flag(b.get("enabled"), "enabled")),
            ),
            ("GET", r"/devices", lambda m, q, b: c.devices()),
            ("GET", r"/devices/{id}", lambda m, q, b: c.device(m["id"])),
            (
                "GET",
                r"/devices/{id}/telemetry",
                lambda m, q, b: c.telemetry(
                    m["id"],
                    _number(q, "wait"),
                    int(_number(q, "limit") or 200),
                    int(_number(q, "after") or 0),
                ),
            ),
            ("PATCH", r"/devices/{id}/twin/desired", lambda m, q, b: c.set_desired(m["id"], b)),
            (
                "POST",
                r"/devices/{id}/methods/{name}",
                lambda m, q, b: c.invoke(m["id"], m["name"], b.get("payload"), b.get("timeout", 30)),
            ),
            (
                "POST",
                r"/devices/{id}/c2d",
                lambda m, q, b: c.send_c2d(m["id"], b.get("body"), b.get("properties"), b.get("body_base64")),
            ),
            ("GET", r"/faults", lambda m, q, b: c.faults()),
            (
                "POST",
                r"/faults",
                lambda m, q, b: c.add_fault(b.get("kind"), **{k: v for k, v in b.items() if k != "kind"}),
            ),
            ("DELETE", r"/faults", lambda m, q, b: c.clear_faults()),
            ("DELETE", r"/faults/{fid:\d+}", lambda m, q, b: c.clear_faults(int(m["fid"]))),
            (
                "GET",
                r"/events",
                lambda m, q, b: c.events(
                    int(_number(q, "after") or 0),
                    q.get("kind"),
                    q.get("device"),
                    int(_number(q, "limit") or 1000),
                ),
            ),
            ("GET", r"/stats", lambda m, q, b: c.stats()),
            ("GET", r"/settings", lambda m, q, b: c.settings()),
            ("PATCH", r"/settings", lambda m, q, b: c.set_settings(b.get("auto_approve"))),
            (
                "POST",
                r"/tokens",
                lambda m, q, b: c.create_api_token(b.get("id"), b.get("role"), b.get("days", 365)),
            ),
        ]

    def route_table(self) -> list[web.RouteDef]:
        """The admin routes as aiohttp routes; the application is assembled in `web.py`."""
        return [web.route(method, path, self._endpoint(handler)) for method, path, handler in self.routes]

    def _endpoint(self, handler: Any) -> Any:
        async def endpoint(request: web.Request) -> web.Response:
            status, payload = await self._answer(request, handler)
            return web.json_response(payload, status=status)

        return endpoint

    async def _answer(self, request: web.Request, handler: Any) -> tuple[int, Any]:
        refused = _cross_site(request)
        if refused:
            return 403, {"error": refused}
        try:
            async with asyncio.timeout(READ_TIMEOUT):  # reading only: a method call may wait longer
                raw = await request.read()
        except TimeoutError:
            return 408, {"error": f"request not complete within {READ_TIMEOUT:g} s"}
        except web.HTTPRequestEntityTooLarge:
            return 413, {"error": "request body too large"}
        try:
            body = jsonbody.parse(raw, MAX_BODY_DEPTH) if raw else {}
        except jsonbody.BadJson as error:
            return 400, {"error": f"body: {error}"}
        if not isinstance(body, dict):
            return 400, {"error": "body: give a JSON object"}
        try:
            result = handler(dict(request.match_info), dict(request.query), body)
            if asyncio.iscoroutine(result):
                result = await result
        except ControlError as error:
            return error.status, {"error": error.message}
        except Exception as error:  # a bug answers 500 and the server keeps running
            return 500, {"error": f"internal error ({type(error).__name__})"}
        created = request.method == "POST" and request.path.rstrip("/") in CREATING_PATHS
        return (201 if created else 200), result


def _cross_site(request: web.Request) -> str | None:
    """Why a request may have come from a web page of another site, or None.

    The admin API has no credentials: anything that can reach the port may use it. A page in the
    user's browser can reach 127.0.0.1 too, and may send a "simple" request (a form, or fetch with
    text/plain) without the browser asking first. Such a request carries the page's Origin, and
    its body cannot be application/json; our clients send no Origin and always send JSON.
    """
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        return f"requests from web pages of other sites ({origin}) are refused; use the CLI or the dashboard"
    if request.can_read_body and request.content_type != "application/json":
        return "send the body as JSON with Content-Type: application/json"
    return None


def _number(query: dict[str, str], name: str) -> float | None:
    if name not in query:
        return None
    try:
        return float(query[name])
    except ValueError:
        raise ControlError(400, f"{name}: not a number") from None
