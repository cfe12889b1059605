"""The IoT Hub side (docs/protocol.md section 2), as sessions without I/O plus a registry of them."""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Callable

from iotcprov.emulator import jsonbody
from iotcprov.emulator import mqtt_codec as mqtt
from iotcprov.emulator.auth import HubIdentity, Refusal, authenticate_hub
from iotcprov.emulator.session import Action, Close, Context, MqttSession, Send

MAX_MESSAGE = 256 * 1024
TWIN_RES_FILTER = "$iothub/twin/res/#"
DESIRED_FILTER = "$iothub/twin/PATCH/properties/desired/#"
METHODS_FILTER = "$iothub/methods/POST/#"
TWIN_GET_PREFIX = "$iothub/twin/GET/?"
REPORTED_PREFIX = "$iothub/twin/PATCH/properties/reported/?"
METHOD_RES_PREFIX = "$iothub/methods/res/"
MAX_TWIN_DEPTH = 10  # IoT Hub: twin property objects nest at most 10 levels below their root
MAX_METHOD_DEPTH = 64  # an answer nested deeper is passed on as text


class DeviceOffline(Exception):
    """The device has no live hub session subscribed to what the operation needs."""


def parse_bag(bag: str) -> dict[str, str]:
    """`k=v&k=v`, URL-encoded, as in telemetry and C2D topics ('+' stays a plus)."""
    properties = {}
    for part in bag.split("&"):
        if part:
            key, _, value = part.partition("=")
            properties[urllib.parse.unquote(key)] = urllib.parse.unquote(value)
    return properties


def encode_bag(properties: dict[str, str]) -> str:
    return "&".join(
        f"{urllib.parse.quote(k, safe='$.')}={urllib.parse.quote(str(v), safe='')}"
        for k, v in properties.items()
    )


def _twin_error(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def _query(topic: str, prefix: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(topic[len(prefix) :], keep_blank_values=True))


MethodWaiter = Callable[[int, object], None]


class HubRegistry:
    """Live hub sessions by device, persistent subscriptions, and pending method calls."""

    def __init__(self) -> None:
        self.sessions: dict[str, HubSession] = {}
        self.saved_subscriptions: dict[str, dict[str, int]] = {}
        # (device, $rid) -> waiter: only the device a call went to can answer it
        self.method_waiters: dict[tuple[str, str], MethodWaiter] = {}
        self.telemetry_listeners: list[Callable[[str], None]] = []
        self.telemetry_received = 0

    def session(self, device_id: str) -> HubSession | None:
        return self.sessions.get(device_id.lower())

    def expect_method_response(self, device_id: str, waiter: MethodWaiter) -> str:
        """A fresh random $rid for a call to `device_id`; its answer goes to `waiter`."""
        rid = secrets.token_hex(8)  # random, so one device cannot guess another's pending call
        self.method_waiters[(device_id.lower(), rid)] = waiter
        return rid

    def forget_method(self, device_id: str, rid: str) -> None:
        self.method_waiters.pop((device_id.lower(), rid), None)

    def take_method_waiter(self, device_id: str, rid: str) -> MethodWaiter | None:
        return self.method_waiters.pop((device_id.lower(), rid), None)

    def kick_all(self, reason: str) -> int:
        sessions = list(self.sessions.values())
        for session in sessions:
            session.push([Close(reason)])
        return len(sessions)


class HubSession(MqttSession):
    endpoint = "hub"

    def __init__(self, context: Context, registry: HubRegistry, peer, now: float) -> None:
        super().__init__(context, peer, now)
        self.registry = registry
        self.identity: HubIdentity | None = None
        self.clean_session = True
        self.c2d_in_flight: dict[int, int] = {}  # MQTT packet id -> stored C2D message id

    # ------------------------------------------------------------ CONNECT
    def on_connect(self, packet: mqtt.Connect, now: float) -> list[Action]:
        context = self.context
        outage = context.faults.find("outage", "hub", None, now)
        if outage is not None:
            self.event("connect refused", "fault: hub outage", now, packet.client_id or None)
            return [Send(mqtt.Connack(mqtt.REFUSED_SERVER_UNAVAILABLE)), Close("fault: outage")]
        try:
            self.identity = authenticate_hub(
                context.store,
                context.config.hub_name,
                packet.client_id,
                packet.username,
                packet.password,
                self.peer,
                now,
            )
        except Refusal as refusal:
            self.event("connect refused", refusal.reason, now, refusal.device or packet.client_id or None)
            return [Send(mqtt.Connack(refusal.return_code)), Close(f"refused: {refusal.reason}")]
        device_id = self.device = self.identity.device_id
        fault = context.faults.take("refuse-connect", "hub", device_id, now)
        if fault is not None:
            code = int(fault["params"]["return_code"])
            self.event("connect refused", f"fault: refuse-connect code {code}", now)
            return [Send(mqtt.Connack(code)), Close("fault: refused CONNECT")]
        previous = self.registry.session(device_id)
        if previous is not None:
            previous.push([Close("another connection for the same device")])
            previous.detach(now, "another connection for the same device")
        self.registry.sessions[device_id.lower()] = self
        self.connected = True
        self.keep_alive = packet.keep_alive
        self.clean_session = packet.clean_session
        session_present = False
        if packet.clean_session:
            self.registry.saved_subscriptions.pop(device_id.lower(), None)
            dropped = context.store.purge_c2d(device_id)
            if dropped:
                self.event("c2d dropped", f"{dropped} queued messages (clean session)", now)
        else:
            saved = self.registry.saved_subscriptions.get(device_id.lower())
            if saved is not None:
                self.subscriptions = dict(saved)
                session_present = True
        self._set_hard_deadline(now)
        self.start_drop_fault(now)
        context.store.device_connected(device_id, self.identity.model_id, now)
        self.event("connected", "sas" if self.identity.token_expiry else "x509", now)
        actions: list[Action] = [Send(mqtt.Connack(mqtt.ACCEPTED, session_present))]
        return actions + self._c2d_actions()

    def _set_hard_deadline(self, now: float) -> None:
        assert self.identity is not None
        deadlines = []
        if self.identity.token_expiry is not None:
            deadlines.append((self.identity.token_expiry, "token expired"))
        limit = self.context.faults.find("session-limit", "hub", self.device, now)
        if limit is not None:
            deadlines.append((now + float(limit["params"]["seconds"]), "fault: session limit reached"))
        if deadlines:
            self.hard_deadline, self.hard_reason = min(deadlines)

    def on_closed(self, reason: str, now: float) -> None:
        if not self.closed:
            self.detach(now, reason)
        super().on_closed(reason, now)

    def detach(self, now: float, reason: str) -> None:
        """Leave the registry (once), keeping subscriptions for a persistent session."""
        if self.device is None or self.closed:
            self.closed = True
            return
        self.closed = True
        key = self.device.lower()
        if self.registry.sessions.get(key) is self:
            del self.registry.sessions[key]
            if self.connected:
                self.context.store.device_disconnected(self.device, reason, now)
        if self.connected:
            if not self.clean_session:
                self.registry.saved_subscriptions[key] = dict(self.subscriptions)
            self.event("disconnected", reason, now)

    # ------------------------------------------------------------ SUBSCRIBE
    def allowed_filter(self, topic_filter: str) -> bool:
        own = f"devices/{self.device}/messages/devicebound/#"
        return topic_filter in (own, TWIN_RES_FILTER, DESIRED_FILTER, METHODS_FILTER)

    def filter_refusal(self, topic_filter: str) -> str:
        if topic_filter.startswith("devices/"):  # IoT Hub: only the device's own C2D topic
            return f"topic filter {topic_filter} is not this device's own C2D topic"
        return super().filter_refusal(topic_filter)

    def on_subscribed(self, topic_filter: str, now: float) -> list[Action]:
        return self._c2d_actions() if topic_filter.endswith("/messages/devicebound/#") else []

    # ------------------------------------------------------------ PUBLISH from the device
    def on_publish(self, packet: mqtt.Publish, now: float) -> list[Action]:
        ack: list[Action] = [Send(mqtt.Puback(packet.packet_id))] if packet.qos == 1 else []
        topic = packet.topic
        if len(packet.payload) > MAX_MESSAGE:
            return [Close(f"message of {len(packet.payload)} bytes exceeds 256 KB")]
        events_prefix = f"devices/{self.device}/messages/events/"
        if topic.startswith(events_prefix) or topic == events_prefix.rstrip("/"):
            properties = parse_bag(topic[len(events_prefix) :])
            self.context.store.add_telemetry(self.device, packet.payload, properties, now)
            self.registry.telemetry_received += 1
            for listener in self.registry.telemetry_listeners:
                listener(self.device)
            return ack
        if topic.startswith(TWIN_GET_PREFIX):
            rid = _query(topic, TWIN_GET_PREFIX).get("$rid", "")
            twin = self.context.store.twin(self.device)
            return ack + self._reply(f"$iothub/twin/res/200/?$rid={rid}", json.dumps(twin).encode())
        if topic.startswith(REPORTED_PREFIX):
            rid = _query(topic, REPORTED_PREFIX).get("$rid", "")
            return ack + self._reported_patch(rid, packet.payload, now)
        if topic.startswith(METHOD_RES_PREFIX):
            status_text, _, query = topic[len(METHOD_RES_PREFIX) :].partition("/?")
            rid = dict(urllib.parse.parse_qsl(query)).get("$rid", "")
            waiter = self.registry.take_method_waiter(self.device, rid) if status_text.isdigit() else None
            if waiter is None:
                self.event("method response ignored", "no call to this device is pending with that $rid", now)
            else:
                try:
                    payload = jsonbody.parse(packet.payload, MAX_METHOD_DEPTH) if packet.payload else None
                except jsonbody.BadJson:
                    payload = packet.payload.decode("utf-8", "replace")
                waiter(int(status_text), payload)
            return ack
        self.event("closed", "PUBLISH to a topic the hub does not know", now)
        return [Close("PUBLISH to a topic the hub does not know")]

    def _reply(self, topic: str, payload: bytes) -> list[Action]:
        send = self.outgoing(topic, payload)
        return [send] if send else []

    def _reported_patch(self, rid: str, payload: bytes, now: float) -> list[Action]:
        try:
            patch = jsonbody.parse(payload, MAX_TWIN_DEPTH + 1)  # + 1: the patch object itself
        except jsonbody.BadJson as error:
            self.event("reported patch refused", str(error), now)
            return self._reply(f"$iothub/twin/res/400/?$rid={rid}", _twin_error(f"reported patch: {error}"))
        if not isinstance(patch, dict):
            return self._reply(
                f"$iothub/twin/res/400/?$rid={rid}", _twin_error("reported patch is not a JSON object")
            )
        version = self.context.store.patch_twin_side(self.device, "reported", patch)
        return self._reply(f"$iothub/twin/res/204/?$rid={rid}&$version={version}", b"")

    def on_puback(self, packet: mqtt.Puback, now: float) -> list[Action]:
        message_id = self.c2d_in_flight.pop(packet.packet_id, None)
        if message_id is not None:
            self.context.store.delete_c2d(message_id)
        return []

    # ------------------------------------------------------------ service-side pushes
    def _c2d_actions(self) -> list[Action]:
        if self.device is None:
            return []
        actions: list[Action] = []
        in_flight = set(self.c2d_in_flight.values())
        for message in self.context.store.pending_c2d(self.device):
            if message["id"] in in_flight:
                continue
            topic = f"devices/{self.device}/messages/devicebound/{encode_bag(message['properties'])}"
            send = self.outgoing(topic, bytes(message["body"]))
            if send is None:
                break
            if send.packet.qos:
                self.c2d_in_flight[send.packet.packet_id] = message["id"]
            else:
                self.context.store.delete_c2d(message["id"])
            actions.append(send)
        return actions

    def deliver_c2d(self) -> None:
        self.push(self._c2d_actions())

    def push_desired(self, patch: dict, version: int) -> bool:
        body = dict(patch, **{"$version": version})
        send = self.outgoing(
            f"$iothub/twin/PATCH/properties/desired/?$version={version}", json.dumps(body).encode()
        )
        if send is None:
            return False
        self.push([send])
        return True

    def start_method(self, name: str, payload: object, rid: str) -> None:
        topic = f"$iothub/methods/POST/{name}/?$rid={rid}"
        send = self.outgoing(topic, json.dumps(payload).encode())
        if send is None:
            raise DeviceOffline("device has not subscribed to direct methods")
        self.push([send])
