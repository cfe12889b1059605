"""The admin HTTP JSON API (documented in docs/emulator.md): a small asyncio HTTP/1.1 server.

One request per connection; bodies and answers are JSON. Routes map one-to-one onto `Control`.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from typing import Any

from iotcprov.emulator import jsonbody
from iotcprov.emulator.control import Control, ControlError

MAX_BODY = 4 * 1024 * 1024
MAX_BODY_DEPTH = 32  # JSON nesting; deeper would exhaust the parser's recursion
READ_TIMEOUT = 5.0  # seconds to receive a whole request; a client that stalls loses the connection
REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ControlError(400, f"{field}: give true or false")
    return value


class AdminServer:
    def __init__(self, control: Control) -> None:
        self.control = control
        c = control
        # (method, path pattern) -> handler(match, query, body)
        self.routes: list[tuple[str, re.Pattern, Any]] = [
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
                r"/groups/(?P<name>[^/]+)/verify",
                lambda m, q, b: c.verify_group(m["name"], b.get("cert")),
            ),
            (
                "POST",
                r"/groups/(?P<name>[^/]+)/enabled",
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
                r"/enrollments/(?P<id>[^/]+)/enabled",
                lambda m, q, b: c.set_enrollment_enabled(m["id"], _flag(b.get("enabled"), "enabled")),
            ),
            ("GET", r"/devices", lambda m, q, b: c.devices()),
            ("GET", r"/devices/(?P<id>[^/]+)", lambda m, q, b: c.device(m["id"])),
            (
                "GET",
                r"/devices/(?P<id>[^/]+)/telemetry",
                lambda m, q, b: c.telemetry(
                    m["id"],
                    _number(q, "wait"),
                    int(_number(q, "limit") or 200),
                    int(_number(q, "after") or 0),
                ),
            ),
            ("PATCH", r"/devices/(?P<id>[^/]+)/twin/desired", lambda m, q, b: c.set_desired(m["id"], b)),
            (
                "POST",
                r"/devices/(?P<id>[^/]+)/methods/(?P<name>[^/]+)",
                lambda m, q, b: c.invoke(m["id"], m["name"], b.get("payload"), b.get("timeout", 30)),
            ),
            (
                "POST",
                r"/devices/(?P<id>[^/]+)/c2d",
                lambda m, q, b: c.send_c2d(m["id"], b.get("body"), b.get("properties"), b.get("body_base64")),
            ),
            ("GET", r"/faults", lambda m, q, b: c.faults()),
            (
                "POST",
                r"/faults",
                lambda m, q, b: c.add_fault(b.get("kind"), **{k: v for k, v in b.items() if k != "kind"}),
            ),
            ("DELETE", r"/faults", lambda m, q, b: c.clear_faults()),
            ("DELETE", r"/faults/(?P<fid>\d+)", lambda m, q, b: c.clear_faults(int(m["fid"]))),
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
        ]
        self.routes = [
            (method, re.compile(pattern + "$"), handler) for method, pattern, handler in self.routes
        ]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):  # reading only: a method call may wait longer
                request = await self._read(reader)
        except TimeoutError:
            status, payload = 408, {"error": f"request not complete within {READ_TIMEOUT:g} s"}
        except ControlError as error:
            status, payload = error.status, {"error": error.message}
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            status, payload = 400, {"error": "malformed HTTP request"}
        else:
            status, payload = await self._dispatch(*request)
        body = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            writer.write(head + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
        """(method, target, raw body) of a whole request."""
        request_line = (await reader.readuntil(b"\r\n")).decode("latin-1").strip()
        method, target, _version = request_line.split(" ", 2)
        headers = {}
        while line := (await reader.readuntil(b"\r\n")).decode("latin-1").strip():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY:
            raise ControlError(413, "request body too large")
        raw = await reader.readexactly(length) if length else b""
        return method, target, raw

    async def _dispatch(self, method: str, target: str, raw: bytes) -> tuple[int, Any]:
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = urllib.parse.unquote(url.path.rstrip("/")) or "/"
        try:
            body = jsonbody.parse(raw, MAX_BODY_DEPTH) if raw else {}
        except jsonbody.BadJson as error:
            return 400, {"error": f"body: {error}"}
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            allowed = True
            if route_method != method:
                continue
            if not isinstance(body, dict):
                return 400, {"error": "body: give a JSON object"}
            try:
                result = handler(match.groupdict(), query, body)
                if asyncio.iscoroutine(result):
                    result = await result
            except ControlError as error:
                return error.status, {"error": error.message}
            except Exception as error:  # a bug answers 500 and the server keeps running
                return 500, {"error": f"internal error ({type(error).__name__})"}
            return (
                201 if method == "POST" and path in ("/groups", "/enrollments", "/faults") else 200
            ), result
        if allowed:
            return 405, {"error": f"{method} is not allowed on {path}"}
        return 404, {"error": f"no such endpoint {path}"}


def _number(query: dict[str, str], name: str) -> float | None:
    if name not in query:
        return None
    try:
        return float(query[name])
    except ValueError:
        raise ControlError(400, f"{name}: not a number") from None
