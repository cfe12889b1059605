"""IoT Central's data-plane REST API (api-version 2022-07-31), the subset docs/central.md lists.

`CentralApi.handle` is sans-I/O: (method, path under /api, query, headers, body) → `Reply`. `build`
wraps it in an aiohttp application that the emulator's web server mounts at `/api`. It works over
the same store DPS and the hub use: an enrollment group made here is the group devices register
against, a device created here is approved when it registers, and `provisioned` is true once DPS
assigned it. Errors have the reference's shape, `{"error": {code, message, requestId, time}}`,
with an `x-ms-error-code` header. Callers authenticate with API tokens the emulator issued
(`iotcprov emulator token create`); only their hashes are stored.
"""

from __future__ import annotations

import collections
import email.utils
import hashlib
import hmac
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from iotcprov.emulator import jsonbody
from iotcprov.emulator.central_common import (
    API_VERSIONS,
    MAX_BODY_DEPTH,
    PAGE_SIZE,
    RATE_PER_SECOND,
    ApiError,
    Reply,
    load_templates,
)
from iotcprov.emulator.central_devices import DeviceEndpoints
from iotcprov.emulator.central_groups import GroupEndpoints
from iotcprov.emulator.control import Control, ControlError

if TYPE_CHECKING:
    from aiohttp import web


class CentralApi(DeviceEndpoints, GroupEndpoints):
    def __init__(
        self,
        control: Control,
        templates: dict[str, dict] | None = None,
        now: Callable[[], float] = time.time,
        rate_per_second: int | None = RATE_PER_SECOND,
    ) -> None:
        self.control = control
        self.store = control.store
        self.now = now
        self.templates = templates if templates is not None else _packaged_templates()
        self.rate_per_second = rate_per_second
        self._recent: collections.deque[float] = collections.deque()
        self.routes: list[tuple[str, re.Pattern, Callable[..., Reply]]] = [
            (method, re.compile(pattern + "$"), handler)
            for method, pattern, handler in [
                ("GET", r"/devices", self.list_devices),
                ("GET", r"/devices/(?P<id>[^/]+)", self.get_device),
                ("PUT", r"/devices/(?P<id>[^/]+)", self.put_device),
                ("PATCH", r"/devices/(?P<id>[^/]+)", self.patch_device),
                ("DELETE", r"/devices/(?P<id>[^/]+)", self.delete_device),
                ("GET", r"/devices/(?P<id>[^/]+)/credentials", self.credentials),
                ("GET", r"/devices/(?P<id>[^/]+)/attestation", self.get_attestation),
                ("PUT", r"/devices/(?P<id>[^/]+)/attestation", self.put_attestation),
                ("PATCH", r"/devices/(?P<id>[^/]+)/attestation", self.patch_attestation),
                ("DELETE", r"/devices/(?P<id>[^/]+)/attestation", self.delete_attestation),
                ("GET", r"/devices/(?P<id>[^/]+)/telemetry/(?P<name>[^/]+)", self.telemetry),
                ("GET", r"/enrollmentGroups", self.list_groups),
                ("GET", r"/enrollmentGroups/(?P<id>[^/]+)", self.get_group),
                ("PUT", r"/enrollmentGroups/(?P<id>[^/]+)", self.put_group),
                ("PATCH", r"/enrollmentGroups/(?P<id>[^/]+)", self.patch_group),
                ("DELETE", r"/enrollmentGroups/(?P<id>[^/]+)", self.delete_group),
                ("GET", r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)", self.get_cert),
                ("PUT", r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)", self.put_cert),
                (
                    "DELETE",
                    r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)",
                    self.delete_cert,
                ),
                (
                    "POST",
                    r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)/generateVerificationCode",
                    self.verification_code,
                ),
                (
                    "POST",
                    r"/enrollmentGroups/(?P<id>[^/]+)/certificates/(?P<entry>[^/]+)/verify",
                    self.verify,
                ),
                ("GET", r"/deviceTemplates", self.list_templates),
                ("GET", r"/deviceTemplates/(?P<id>[^/]+)", self.get_template),
            ]
        ]

    # ------------------------------------------------------------ the request cycle
    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        raw: bytes,
        base_url: str,
    ) -> Reply:
        """One request; `path` is below /api, `base_url` is the API's own URL (for nextLink)."""
        request_id = secrets.token_hex(4)
        try:
            self._authenticate(headers.get("Authorization") or headers.get("authorization"))
            self._throttle()
            version = query.get("api-version")
            if not version:
                raise ApiError(
                    400, "The api-version query parameter is required.", "MissingApiVersionParameter"
                )
            if version not in API_VERSIONS:
                raise ApiError(
                    400,
                    f"api-version {version!r} is not supported here; use {', '.join(API_VERSIONS)}.",
                    "InvalidApiVersionParameter",
                )
            handler, match = self._route(method, urllib.parse.unquote(path.rstrip("/")) or "/")
            body = self._body(raw, method)
            reply = handler(match, body, query, base_url)
        except ApiError as error:
            reply = self._error(error, request_id)
        except ControlError as error:  # the emulator's own checks, on a body the caller sent
            reply = self._error(
                ApiError(422 if error.status == 400 else error.status, error.message), request_id
            )
        except Exception as error:  # a bug answers 500 and the server keeps running
            reply = self._error(ApiError(500, f"Internal error ({type(error).__name__})."), request_id)
        reply.headers.setdefault("x-ms-request-id", request_id)
        return reply

    def _error(self, error: ApiError, request_id: str) -> Reply:
        stamp = email.utils.formatdate(self.now(), usegmt=True)
        message = f"{error.message} Request ID: {request_id}, Time: {stamp}."
        body = {"error": {"code": error.code, "message": message, "requestId": request_id, "time": stamp}}
        headers = {"x-ms-error-code": error.code}
        if error.status == 429:
            headers["Retry-After"] = "1"
        return Reply(error.status, body, headers)

    def _route(self, method: str, path: str) -> tuple[Callable[..., Reply], dict]:
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match:
                allowed = True
                if route_method == method:
                    return handler, match.groupdict()
        if allowed:
            raise ApiError(405, f"{method} is not allowed on {path}.")
        raise ApiError(404, f"No such resource: {path}.")

    def _body(self, raw: bytes, method: str) -> dict:
        if method in ("GET", "DELETE") or not raw.strip():
            return {}
        try:
            body = jsonbody.parse(raw, MAX_BODY_DEPTH)
        except jsonbody.BadJson as error:
            raise ApiError(400, f"The body is not valid JSON: {error}.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The body must be a JSON object.")
        return body

    def _authenticate(self, header: str | None) -> None:
        if not header:
            raise ApiError(401, "An Authorization header is required (an API token).")
        if header.startswith("Bearer "):
            raise ApiError(
                401,
                "The emulator accepts only API tokens it issued (iotcprov emulator token create), "
                "not Microsoft Entra bearer tokens.",
            )
        scheme, _, rest = header.partition(" ")
        fields = dict(urllib.parse.parse_qsl(rest, keep_blank_values=True))
        if scheme != "SharedAccessSignature" or not {"sr", "sig", "skn", "se"} <= set(fields):
            raise ApiError(401, "The provided authentication token is invalid.")
        row = self.store.api_token(fields["skn"])
        digest = hashlib.sha256(header.strip().encode()).hexdigest()
        if row is None or not hmac.compare_digest(digest, row["token_hash"]):
            raise ApiError(401, "The provided authentication token is invalid.")
        if fields["sr"] != self.control.app_id():
            raise ApiError(401, "The provided authentication token is not valid for this application.")
        if int(row["expiry_ms"]) <= self.now() * 1000:
            raise ApiError(401, "The provided authentication token has expired.")

    def _throttle(self) -> None:
        if self.rate_per_second is None:
            return
        now = self.now()
        while self._recent and self._recent[0] <= now - 1:
            self._recent.popleft()
        if len(self._recent) >= self.rate_per_second:
            raise ApiError(429, f"Too many requests: the limit is {self.rate_per_second} per second.")
        self._recent.append(now)

    @staticmethod
    def _page(items: list[dict], query: Mapping[str, str], base_url: str, path: str) -> Reply:
        try:
            start = int(query.get("$skiptoken", "0"))
        except ValueError:
            raise ApiError(400, "$skiptoken is not valid.") from None
        page = items[start : start + PAGE_SIZE]
        body: dict[str, Any] = {"value": page}
        if start + PAGE_SIZE < len(items):
            next_query = urllib.parse.urlencode(
                {"api-version": query["api-version"], "$skiptoken": start + PAGE_SIZE}
            )
            body["nextLink"] = f"{base_url}{path}?{next_query}"
        return Reply(200, body)

    # ------------------------------------------------------------ devices
def _packaged_templates() -> dict[str, dict]:
    from iotcprov.resources import firmware_dir

    return load_templates(firmware_dir() / "models")


def build(control: Control, **kwargs: Any) -> web.Application:
    """The aiohttp application serving the API; the emulator mounts it at `/api`."""
    from aiohttp import web

    api = CentralApi(control, **kwargs)

    async def dispatch(request: web.Request) -> web.Response:
        raw = await request.read()
        base_url = f"{request.scheme}://{request.host}/api"
        reply = api.handle(
            request.method, "/" + request.match_info["tail"], request.query, request.headers, raw, base_url
        )
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app["central_api"] = api
    return app
