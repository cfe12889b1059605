"""The Device Provisioning Service side (docs/protocol.md section 1), as a session without I/O."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass

from iotcprov.emulator import jsonbody
from iotcprov.emulator import mqtt_codec as mqtt
from iotcprov.emulator.auth import DpsIdentity, Refusal, authenticate_dps
from iotcprov.emulator.session import Action, Close, Context, MqttSession, Send

REGISTER_PREFIX = "$dps/registrations/PUT/iotdps-register/?"
POLL_PREFIX = "$dps/registrations/GET/iotdps-get-operationstatus/?"
RESPONSE_FILTERS = {"$dps/registrations/res/#"}
MAX_REQUEST_DEPTH = 32  # the request body with its custom payload; deeper is a 400, not a crash

ERROR_MESSAGES = {
    400: (400004, "The request is malformed."),
    404: (404001, "The operation was not found."),
    429: (429001, "Operations are being throttled for this tenant."),
    500: (500001, "An internal error occurred."),
    503: (503001, "The service is unavailable."),
}


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Operation:
    operation_id: str
    registration_id: str
    polls_left: int
    result: dict | None = None


class DpsState:
    """Service-wide DPS state kept in memory: operations in flight and recent registrations."""

    def __init__(self) -> None:
        self.operations: dict[str, Operation] = {}
        self.recent: deque[float] = deque()

    def over_rate(self, per_minute: int | None, now: float) -> bool:
        while self.recent and self.recent[0] <= now - 60:
            self.recent.popleft()
        return per_minute is not None and len(self.recent) >= per_minute


class DpsSession(MqttSession):
    endpoint = "dps"

    def __init__(self, context: Context, state: DpsState, peer, now: float) -> None:
        super().__init__(context, peer, now)
        self.state = state
        self.identity: DpsIdentity | None = None

    # ------------------------------------------------------------ CONNECT
    def on_connect(self, packet: mqtt.Connect, now: float) -> list[Action]:
        try:
            self.identity = authenticate_dps(
                self.context.store, packet.client_id, packet.username, packet.password, self.peer, now
            )
        except Refusal as refusal:
            self.event("connect refused", refusal.reason, now, refusal.device or packet.client_id or None)
            return [Send(mqtt.Connack(refusal.return_code)), Close(f"refused: {refusal.reason}")]
        self.device = self.identity.registration_id
        fault = self.context.faults.take("refuse-connect", "dps", self.device, now)
        if fault is not None:
            code = int(fault["params"]["return_code"])
            self.event("connect refused", f"fault: refuse-connect code {code}", now)
            return [Send(mqtt.Connack(code)), Close("fault: refused CONNECT")]
        self.connected = True
        self.keep_alive = packet.keep_alive
        self.start_drop_fault(now)
        self.event(
            "connected",
            f"{self.identity.enrollment.attestation} via "
            f"{self.identity.enrollment.kind} {self.identity.enrollment.name}",
            now,
        )
        return [Send(mqtt.Connack(mqtt.ACCEPTED))]

    def allowed_filter(self, topic_filter: str) -> bool:
        return topic_filter in RESPONSE_FILTERS

    # ------------------------------------------------------------ PUBLISH
    def on_publish(self, packet: mqtt.Publish, now: float) -> list[Action]:
        actions: list[Action] = [Send(mqtt.Puback(packet.packet_id))] if packet.qos == 1 else []
        if packet.topic.startswith(REGISTER_PREFIX):
            params = dict(urllib.parse.parse_qsl(packet.topic[len(REGISTER_PREFIX) :]))
            return actions + self._answer(params.get("$rid", ""), self._register(packet.payload, now), now)
        if packet.topic.startswith(POLL_PREFIX):
            params = dict(urllib.parse.parse_qsl(packet.topic[len(POLL_PREFIX) :]))
            answer = self._poll(params.get("operationId", ""), now)
            return actions + self._answer(params.get("$rid", ""), answer, now)
        return [Close("PUBLISH to a topic DPS does not know")]

    def _answer(self, rid: str, answer: tuple[int, dict, int | None], now: float) -> list[Action]:
        status, body, retry_after = answer
        fault = self.context.faults.take("dps-status", "dps", self.device, now)
        if fault is not None:
            status = int(fault["params"]["status"])
            retry_after = int(fault["params"]["retry_after"])
            body = self._error(status, "fault injected")
            self.event("dps answer", f"fault: status {status}", now)
        query = {"$rid": rid}
        if retry_after is not None:
            query["retry-after"] = str(retry_after)
        topic = f"$dps/registrations/res/{status}/?" + urllib.parse.urlencode(query, safe="$")
        send = self.outgoing(topic, json.dumps(body).encode())
        return [send] if send else []

    def _error(self, status: int, detail: str) -> dict:
        code, message = ERROR_MESSAGES.get(status, (status * 1000 + 1, "Error."))
        return {"errorCode": code, "trackingId": str(uuid.uuid4()), "message": f"{message} {detail}".strip()}

    def _register(self, payload: bytes, now: float) -> tuple[int, dict, int | None]:
        assert self.identity is not None
        retry_after = self.context.config.dps_retry_after
        try:
            request = jsonbody.parse(payload or b"{}", MAX_REQUEST_DEPTH)
        except jsonbody.BadJson as error:
            self.event("register refused", f"body: {error}", now)
            return 400, self._error(400, f"Body: {error}."), None
        if not isinstance(request, dict):
            self.event("register refused", "body is not a JSON object", now)
            return 400, self._error(400, "Body is not a JSON object."), None
        requested = request.get("registrationId", self.identity.registration_id)
        if not isinstance(requested, str) or requested.lower() != self.identity.registration_id.lower():
            self.event("register refused", "registrationId in the body differs from the user name", now)
            return 400, self._error(400, "registrationId does not match the connection."), None
        rate = self.context.faults.find("dps-rate", "dps", None, now)
        per_minute = int(rate["params"]["per_minute"]) if rate else self.context.config.dps_rate_per_minute
        if self.state.over_rate(per_minute, now):
            self.event("register throttled", f"more than {per_minute} registrations per minute", now)
            return 429, self._error(429, ""), max(retry_after, 1)
        self.state.recent.append(now)
        operation = Operation(
            f"4.{secrets.token_hex(8)}.{uuid.uuid4()}",
            self.identity.registration_id,
            self.context.config.dps_polls_before_assigned,
        )
        operation.result = self._complete(request.get("payload"), operation, now)
        self.state.operations[operation.operation_id] = operation
        return 202, {"operationId": operation.operation_id, "status": "assigning"}, retry_after

    def _poll(self, operation_id: str, now: float) -> tuple[int, dict, int | None]:
        operation = self.state.operations.get(operation_id)
        if (
            operation is None
            or self.identity is None
            or operation.registration_id.lower() != self.identity.registration_id.lower()
        ):
            return 404, self._error(404, ""), None
        if operation.polls_left > 0:
            operation.polls_left -= 1
            return (
                202,
                {"operationId": operation_id, "status": "assigning"},
                self.context.config.dps_retry_after,
            )
        self.state.operations.pop(operation_id, None)
        return 200, operation.result or {}, None

    def _approval(self, registration_id: str, now: float) -> str | None:
        """IoT Central's device list: None when the device may register, else why not.

        A device the application does not list yet joins it, approved when automatic approval is
        on (the default), else waiting for approval (`enabled: false` in the IoT Central API) and
        refused until someone approves it there. A device the application blocks is refused too.
        """
        store = self.context.store
        listed = store.app_device(registration_id)
        if listed is None:
            approved = self.context.config.auto_approve
            store.put_app_device(registration_id, enabled=1 if approved else 0)
            if approved:
                return None
            listed = store.app_device(registration_id)
        elif listed["enabled"]:
            return None
        assert listed is not None
        waiting = store.device(registration_id) is None
        state = "waiting for approval" if waiting else "blocked"
        self.event("register refused", f"{state} in the application", now)
        return f"Custom allocation failed: the device is {state} in the IoT Central application."

    def _complete(self, device_payload: object, operation: Operation, now: float) -> dict:
        """Decide the registration: assigned (recorded in the store) or disabled (nothing assigned)."""
        assert self.identity is not None
        enrollment = self.identity.enrollment
        registration_id = self.identity.registration_id
        state = {
            "registrationId": registration_id,
            "createdDateTimeUtc": _iso(now),
            "lastUpdatedDateTimeUtc": _iso(now),
            "etag": f'"{secrets.token_hex(8)}"',
        }
        if not enrollment.enabled:
            self.event(
                "register disabled", f"{enrollment.kind} enrollment {enrollment.name} is disabled", now
            )
            state.update(status="disabled", errorCode=401005, errorMessage="The enrollment is disabled.")
            return {"operationId": operation.operation_id, "status": "disabled", "registrationState": state}
        store = self.context.store
        refused = self._approval(registration_id, now)
        if refused is not None:
            state.update(status="failed", errorCode=404, errorMessage=refused)
            return {"operationId": operation.operation_id, "status": "failed", "registrationState": state}
        existing = store.device(registration_id)
        model_id = device_payload.get("modelId") if isinstance(device_payload, dict) else None
        if model_id is None and isinstance(device_payload, dict):
            model_id = device_payload.get("iotcModelId")
        hub = self.context.config.hub_name
        store.record_registration(
            registration_id,
            {
                "enrollment_kind": enrollment.kind,
                "enrollment_name": enrollment.name,
                "attestation": enrollment.attestation,
                "assigned_hub": hub,
                "status": "assigned",
                "dps_model_id": model_id if isinstance(model_id, str) else None,
                "dps_payload": json.dumps(device_payload) if device_payload is not None else None,
            },
            now,
        )
        device = store.device(registration_id)
        assert device is not None
        substatus = (
            "initialAssignment"
            if existing is None or existing["status"] != "assigned"
            else "reprovisionedToInitialAssignment"
        )
        self.event("registered", f"assigned to {hub} ({enrollment.kind} {enrollment.name})", now)
        state.update(
            assignedHub=hub,
            deviceId=device["device_id"],
            status="assigned",
            substatus=substatus,
            payload=None,
        )
        if enrollment.attestation == "sas":
            state["symmetricKey"] = (
                {"enrollmentGroupId": enrollment.name} if enrollment.kind == "group" else {}
            )
        return {"operationId": operation.operation_id, "status": "assigned", "registrationState": state}
