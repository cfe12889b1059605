"""The emulator's dashboard: an aiohttp sub-application mounted at /dashboard (emulator/web.py).

Pages: devices (`/`), one device (`/device?id=`), groups and enrollments (`/groups`), faults
(`/faults`), events (`/events`). Reads go through `Control`, as the admin API's do; every answer
is built here field by field from what a page shows, so a key the store holds cannot slip out.
Control actions (`/ops/...`) need the operator token (dashboard/web.py).

Live updates: `ChangeFeed` hooks the emulator's event and telemetry listeners and wakes the
streams that care; each stream then reads what changed from the store and sends it, coalescing
bursts (a thousand devices sending at once cost one message, not a thousand).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from aiohttp import web

from iotcprov.dashboard import web as dw
from iotcprov.emulator.control import Control, ControlError
from iotcprov.emulator.faults import DEFAULT_ENDPOINT, KINDS

COALESCE = 0.2  # seconds a woken stream waits for more changes before sending
DEVICE_POLL = 1.0  # a device page's stream also looks at the twin this often (reported patches)
EVENTS_SENT = 200  # at most this many events per stream message
TELEMETRY_LOADED = 200  # messages a device page starts with (all the store keeps)
MAX_INVOKE_TIMEOUT = 120


def new_token() -> str:
    return secrets.token_urlsafe(24)


class _Waiter:
    def __init__(self, device: str | None) -> None:
        self.device = device.lower() if device else None
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()

    def notify(self, device: str | None) -> None:
        if self.device is not None and (device or "").lower() != self.device:
            return
        if device:
            self.dirty.add(device)
        self.wake.set()


class ChangeFeed:
    """Wakes event streams when the emulator records an event or stores telemetry."""

    def __init__(self, control: Control) -> None:
        self.waiters: set[_Waiter] = set()
        control.context.listeners.append(lambda record: self._notify(record.get("device")))
        control.registry.telemetry_listeners.append(self._notify)

    def _notify(self, device: str | None) -> None:
        for waiter in self.waiters:
            waiter.notify(device)

    @contextlib.contextmanager
    def waiter(self, device: str | None = None):
        waiter = _Waiter(device)
        self.waiters.add(waiter)
        try:
            yield waiter
        finally:
            self.waiters.discard(waiter)


# ---------------------------------------------------------------- what pages see


def device_row(row: dict) -> dict:
    """A device as the devices list shows it, from a store row."""
    seen = [row[k] for k in ("last_registration", "last_connected", "last_disconnected", "last_message")]
    return {
        "id": row["device_id"],
        "enrollment": {
            "kind": row["enrollment_kind"],
            "name": row["enrollment_name"],
            "attestation": row["attestation"],
        },
        "status": row["status"],
        "connected": bool(row["connected"]),
        "last_seen": max((t for t in seen if t), default=None),
        "model_id": row["hub_model_id"] or row["dps_model_id"],
        "messages": row["messages"],
    }


def device_detail(view: dict) -> dict:
    """A device as its page shows it, from `Control.device`'s record."""
    keys = (
        "device_id", "status", "assigned_hub", "enrollment", "registrations", "last_registration",
        "model_id", "connected", "hub_connections", "last_connected", "last_disconnected",
        "disconnect_reason", "messages", "last_message", "twin", "c2d_queued",
    )  # fmt: skip
    return {key: view.get(key) for key in keys}


def event_view(record: dict) -> dict:
    return {key: record.get(key) for key in ("id", "time", "endpoint", "kind", "device", "reason")}


def telemetry_view(message: dict) -> dict:
    view = {key: message.get(key) for key in ("id", "time", "body", "properties")}
    if "body_base64" in message:
        view["body_base64"] = message["body_base64"]
    return view


def group_view(group: dict) -> dict:
    view = {"name": group["name"], "attestation": group["attestation"], "enabled": group["enabled"]}
    if group["attestation"] == "x509":
        view["verified"] = group["verified"]
        view["ca_thumbprint"] = group["ca_thumbprint"]
    return view


def enrollment_view(enrollment: dict) -> dict:
    return {key: enrollment.get(key) for key in ("device_id", "attestation", "enabled", "thumbprint")}


def fault_view(fault: dict) -> dict:
    keys = ("id", "kind", "endpoint", "device", "remaining", "until", "params")
    return {key: fault.get(key) for key in keys}


# ---------------------------------------------------------------- the application


LAYOUT = "emulator-layout.html"
NAVIGATION = [
    ("./", "Devices"),
    ("groups", "Groups & enrollments"),
    ("faults", "Faults"),
    ("events", "Events"),
]


class EmulatorDashboard:
    def __init__(self, control: Control, token: str) -> None:
        self.control = control
        self.store = control.store
        self.token = token
        self.feed = ChangeFeed(control)

    @staticmethod
    def page(name: str, title: str, current: str | None):  # -> an aiohttp handler
        return dw.layout_page(LAYOUT, name, title, NAVIGATION, current)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[dw.security_headers])
        app.add_routes(
            [
                web.get("/", self.page("devices.html", "Devices", "./")),
                web.get("/device", self.page("device.html", "Device", None)),
                web.get("/groups", self.page("groups.html", "Groups and enrollments", "groups")),
                web.get("/faults", self.page("faults.html", "Faults", "faults")),
                web.get("/events", self.page("events.html", "Events", "events")),
                *dw.static_routes(),
                web.get("/data/devices", self.devices),
                web.get("/data/device", self.device),
                web.get("/data/groups", self.groups),
                web.get("/data/faults", self.faults),
                web.get("/data/events", self.events),
                web.get("/stream", self.stream),
                web.post("/ops/check", self.operate(self._check)),
                web.post("/ops/desired", self.operate(self._desired)),
                web.post("/ops/invoke", self.operate(self._invoke)),
                web.post("/ops/c2d", self.operate(self._c2d)),
                web.post("/ops/group-enabled", self.operate(self._group_enabled)),
                web.post("/ops/enrollment-enabled", self.operate(self._enrollment_enabled)),
                web.post("/ops/fault", self.operate(self._add_fault)),
                web.post("/ops/clear-faults", self.operate(self._clear_faults)),
            ]
        )
        return app

    # ------------------------------------------------------------ reads
    def _last_event_id(self) -> int:
        return self.store.last_event_id()

    def _stats(self) -> dict:
        stats = self.control.stats()
        keys = ("devices", "connected", "registrations", "telemetry_received", "uptime")
        return {key: stats[key] for key in keys}

    async def devices(self, request: web.Request) -> web.Response:
        rows = [device_row(row) for row in self.store.devices()]
        return dw.json_answer({"devices": rows, "stats": self._stats(), "event_id": self._last_event_id()})

    async def device(self, request: web.Request) -> web.Response:
        device_id = request.query.get("id", "")
        event_id = self._last_event_id()
        try:
            detail = device_detail(self.control.device(device_id))
        except ControlError as failure:
            detail = None
            if failure.status != 404:
                return dw.error(failure.status, failure.message)
        telemetry = self.store.telemetry(device_id, TELEMETRY_LOADED) if detail else []
        events = self.store.events(0, None, device_id, 10_000)[-EVENTS_SENT:] if device_id else []
        return dw.json_answer(
            {
                "device": detail,
                "telemetry": [telemetry_view(m) for m in telemetry],
                "events": [event_view(e) for e in events],
                "event_id": event_id,
            }
        )

    async def groups(self, request: web.Request) -> web.Response:
        groups = [group_view(g) for g in self.control.groups()]
        enrollments = [enrollment_view(e) for e in self.control.enrollments()]
        return dw.json_answer({"groups": groups, "enrollments": enrollments})

    async def faults(self, request: web.Request) -> web.Response:
        kinds = {
            kind: {"parameters": sorted(params), "endpoint": DEFAULT_ENDPOINT.get(kind)}
            for kind, params in sorted(KINDS.items())
        }
        faults = [fault_view(f) for f in self.control.faults()]
        return dw.json_answer({"faults": faults, "kinds": kinds})

    async def events(self, request: web.Request) -> web.Response:
        after = _int(request.query.get("after"), 0)
        device = request.query.get("device") or None
        kind = request.query.get("kind") or None
        events = self.store.events(after, kind, device, 100_000)[-1000:]
        return dw.json_answer({"events": [event_view(e) for e in events], "event_id": self._last_event_id()})

    # ------------------------------------------------------------ the live stream
    async def stream(self, request: web.Request) -> web.StreamResponse:
        """view=devices (rows that changed, counts), device (one device's telemetry, twin and
        events) or events (every event)."""
        view = request.query.get("view", "devices")
        device = request.query.get("device") or None
        if view not in ("devices", "device", "events") or (view == "device" and not device):
            return dw.error(400, "view: give devices, events, or device with device=ID")
        last_event = _int(request.query.get("after"), self._last_event_id())
        last_telemetry = _int(request.query.get("telemetry_after"), 0)
        last_detail: dict | None = None
        stream = await dw.EventStream(request).open()
        with self.feed.waiter(device if view == "device" else None) as waiter:
            waiter.wake.set()  # a first look: what changed between the page's load and now
            idle = 0.0
            while True:
                timeout = DEVICE_POLL if view == "device" else dw.KEEPALIVE
                try:
                    await asyncio.wait_for(waiter.wake.wait(), timeout)
                except TimeoutError:
                    idle += timeout
                    if idle >= dw.KEEPALIVE:
                        await stream.keepalive()
                        idle = 0.0
                    if view != "device":
                        continue
                else:
                    await asyncio.sleep(COALESCE)
                waiter.wake.clear()
                dirty, waiter.dirty = waiter.dirty, set()
                if view == "devices":
                    # events name the devices that registered, connected or left since the last look
                    events = self.store.events(last_event, None, None, 10_000)
                    if events:
                        last_event = events[-1]["id"]
                        dirty.update(e["device"] for e in events if e["device"])
                    if dirty:
                        await stream.send("devices", {"rows": self._rows(dirty), "stats": self._stats()})
                    continue
                events = self.store.events(last_event, None, device, EVENTS_SENT)
                if events:
                    last_event = events[-1]["id"]
                    await stream.send("log", {"events": [event_view(e) for e in events]})
                if view == "events":
                    continue
                record = self.store.device(device)
                if record is None:
                    continue
                messages = self.store.telemetry(device, TELEMETRY_LOADED, last_telemetry)
                if messages:
                    last_telemetry = messages[-1]["id"]
                    await stream.send("telemetry", {"messages": [telemetry_view(m) for m in messages]})
                detail = device_detail(self.control.device(device))
                if detail != last_detail:
                    last_detail = detail
                    await stream.send("device", {"device": detail})

    def _rows(self, device_ids: set[str]) -> list[dict]:
        if len(device_ids) > 50:
            wanted = {d.lower() for d in device_ids}
            return [device_row(r) for r in self.store.devices() if r["device_id"].lower() in wanted]
        rows = (self.store.device(d) for d in sorted(device_ids))
        return [device_row(r) for r in rows if r is not None]

    # ------------------------------------------------------------ operator actions
    def operate(self, action: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if not dw.is_operator(request, self.token):
                return dw.error(403, "operator mode: give the dashboard token the emulator printed")
            body = await dw.read_json(request)
            try:
                result = action(body)
                if asyncio.iscoroutine(result):
                    result = await result
            except ControlError as failure:
                return dw.error(failure.status, failure.message)
            except (TypeError, ValueError) as failure:
                return dw.error(400, str(failure))
            return dw.json_answer(result)

        return handler

    def _check(self, body: dict) -> dict:
        return {"operator": True}

    def _desired(self, body: dict) -> dict:
        return self.control.set_desired(_text(body, "device"), body.get("patch"))

    async def _invoke(self, body: dict) -> dict:
        timeout = body.get("timeout", 30)
        if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_INVOKE_TIMEOUT:
            raise ControlError(400, f"timeout: give 1..{MAX_INVOKE_TIMEOUT} seconds")
        return await self.control.invoke(
            _text(body, "device"), _text(body, "command"), body.get("payload"), timeout
        )

    def _c2d(self, body: dict) -> dict:
        return self.control.send_c2d(_text(body, "device"), _text(body, "body"), body.get("properties"))

    def _group_enabled(self, body: dict) -> dict:
        return group_view(self.control.set_group_enabled(_text(body, "name"), _flag(body, "enabled")))

    def _enrollment_enabled(self, body: dict) -> dict:
        changed = self.control.set_enrollment_enabled(_text(body, "device"), _flag(body, "enabled"))
        return enrollment_view(changed)

    def _add_fault(self, body: dict) -> dict:
        fields = {k: v for k, v in body.items() if k != "kind" and v not in (None, "")}
        return fault_view(self.control.add_fault(_text(body, "kind"), **fields))

    def _clear_faults(self, body: dict) -> dict:
        fault_id = body.get("id")
        if fault_id is not None and not isinstance(fault_id, int):
            raise ControlError(400, "id: give a fault ID")
        return self.control.clear_faults(fault_id)


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _text(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"{field}: give a non-empty string")
    return value


def _flag(body: dict, field: str) -> bool:
    value = body.get(field)
    if not isinstance(value, bool):
        raise ControlError(400, f"{field}: give true or false")
    return value


def build(control: Control, token: str) -> web.Application:
    """The dashboard sub-application; `token` unlocks operator mode."""
    return EmulatorDashboard(control, token).app()
