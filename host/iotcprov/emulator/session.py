"""What DPS and hub connections share: actions, the emulator context, and MQTT session basics.

A session never touches a socket: `handle(packet, now)` returns actions (send a packet, close
with a reason) for the server to carry out, and `deadline()` tells when `on_timer(now)` is due
(keep-alive at 1.5 x the client's interval, token expiry, session limits). Pushes that start on
the service side (desired patches, methods, C2D, kicks) go through `push`, which hands actions to
the `sink` the server installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from iotcprov.emulator import mqtt_codec as mqtt
from iotcprov.emulator.auth import PeerCertificate
from iotcprov.emulator.faults import Faults
from iotcprov.emulator.store import Store

KEEP_ALIVE_FACTOR = 1.5
CONNECT_TIMEOUT = 30.0  # seconds from TCP accept to CONNECT
MAX_LOGGED_FILTER = 200  # characters of a refused topic filter kept in the event log


@dataclass
class Send:
    packet: mqtt.Packet
    delay: float = 0.0


@dataclass
class Close:
    reason: str


Action = Send | Close


@dataclass
class Config:
    hub_name: str = "localhost"
    dps_retry_after: int = 1  # seconds the 202 "assigning" answers ask for
    dps_polls_before_assigned: int = 0  # extra 202 answers to polls; 0 = the result on the first poll
    dps_rate_per_minute: int | None = None
    # IoT Central's automatic approval: off, a device registering through a group without having
    # been created in the application first waits for approval (docs/central.md)
    auto_approve: bool = True


@dataclass
class Context:
    """Everything sessions share: store, faults, configuration, and the live hub sessions."""

    store: Store
    config: Config
    faults: Faults = field(init=False)
    listeners: list[Callable[[dict], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.faults = Faults(self.store)

    def event(self, endpoint: str, kind: str, device: str | None, reason: str | None, now: float) -> None:
        record = self.store.add_event(endpoint, kind, device, reason, now)
        for listener in self.listeners:
            listener(record)


class MqttSession:
    endpoint = "mqtt"

    def __init__(self, context: Context, peer: PeerCertificate | None, now: float) -> None:
        self.context = context
        self.peer = peer
        self.connected = False
        self.closed = False
        self.device: str | None = None  # registration or device ID once known
        self.keep_alive = 0
        self.last_rx = now
        self.accepted_at = now
        self.packets_in = 0
        self.drop_after: int | None = None
        self.hard_deadline: float | None = None
        self.hard_reason = ""
        self.subscriptions: dict[str, int] = {}
        self.sink: Callable[[list[Action]], None] | None = None
        self._packet_id = 0

    # ------------------------------------------------------------ for the server
    def handle(self, packet: mqtt.Packet, now: float) -> list[Action]:
        if self.closed:
            return []
        self.last_rx = now
        self.packets_in += 1
        if not self.connected:
            if not isinstance(packet, mqtt.Connect):
                return [Close("first packet is not CONNECT")]
            actions = self.on_connect(packet, now)
        elif isinstance(packet, mqtt.Connect):
            actions = [Close("second CONNECT on one connection")]
        elif isinstance(packet, mqtt.Pingreq):
            actions = [Send(mqtt.Pingresp())]
        elif isinstance(packet, mqtt.Disconnect):
            actions = [Close("client disconnected")]
        elif isinstance(packet, mqtt.Subscribe):
            actions = self.on_subscribe(packet, now)
        elif isinstance(packet, mqtt.Unsubscribe):
            for topic in packet.topics:
                self.subscriptions.pop(topic, None)
            actions = [Send(mqtt.Unsuback(packet.packet_id))]
        elif isinstance(packet, mqtt.Publish):
            if packet.qos == 2:
                actions = [Close("QoS 2 PUBLISH is not supported")]
            else:
                actions = self.on_publish(packet, now)
        elif isinstance(packet, mqtt.Puback):
            actions = self.on_puback(packet, now)
        else:
            actions = [Close(f"unexpected {type(packet).__name__} from a client")]
        if self.drop_after is not None and self.packets_in >= self.drop_after:
            actions.append(Close(f"fault: dropped after {self.drop_after} packets"))
        return self._delayed(actions, now)

    def protocol_error(self, error: mqtt.MqttProtocolError, now: float) -> list[Action]:
        if isinstance(error, mqtt.UnsupportedProtocolVersion) and not self.connected:
            return [Send(mqtt.Connack(mqtt.REFUSED_PROTOCOL_VERSION)), Close(f"protocol error: {error}")]
        return [Close(f"protocol error: {error}")]

    def deadline(self) -> float | None:
        candidates = []
        if not self.connected:
            candidates.append(self.accepted_at + CONNECT_TIMEOUT)
        elif self.keep_alive:
            candidates.append(self.last_rx + KEEP_ALIVE_FACTOR * self.keep_alive)
        if self.hard_deadline is not None:
            candidates.append(self.hard_deadline)
        return min(candidates) if candidates else None

    def on_timer(self, now: float) -> list[Action]:
        if self.closed:
            return []
        if not self.connected and now >= self.accepted_at + CONNECT_TIMEOUT:
            return [Close("no CONNECT in time")]
        if self.hard_deadline is not None and now >= self.hard_deadline:
            return [Close(self.hard_reason)]
        if self.connected and self.keep_alive and now >= self.last_rx + KEEP_ALIVE_FACTOR * self.keep_alive:
            return [Close("keep-alive expired (1.5 x interval without a packet)")]
        return []

    def on_closed(self, reason: str, now: float) -> None:
        """Called once by the server when the connection is gone."""
        self.closed = True

    def push(self, actions: list[Action]) -> None:
        if self.sink is not None and not self.closed:
            self.sink(actions)

    # ------------------------------------------------------------ for subclasses
    def on_connect(self, packet: mqtt.Connect, now: float) -> list[Action]:
        raise NotImplementedError

    def allowed_filter(self, topic_filter: str) -> bool:
        raise NotImplementedError

    def on_subscribed(self, topic_filter: str, now: float) -> list[Action]:
        return []

    def on_publish(self, packet: mqtt.Publish, now: float) -> list[Action]:
        raise NotImplementedError

    def on_puback(self, packet: mqtt.Puback, now: float) -> list[Action]:
        return []

    def on_subscribe(self, packet: mqtt.Subscribe, now: float) -> list[Action]:
        codes, after = [], []
        for topic_filter, qos in packet.topics:
            if self.allowed_filter(topic_filter):
                granted = min(qos, 1)
                self.subscriptions[topic_filter] = granted
                codes.append(granted)
                after += self.on_subscribed(topic_filter, now)
            else:
                codes.append(mqtt.SUBACK_FAILURE)
                self.event("subscribe refused", self.filter_refusal(topic_filter[:MAX_LOGGED_FILTER]), now)
        return [Send(mqtt.Suback(packet.packet_id, codes)), *after]

    def filter_refusal(self, topic_filter: str) -> str:
        """Why a topic filter is refused, for the event log."""
        return f"topic filter {topic_filter} is not one a device may subscribe to"

    def subscribed_qos(self, topic: str) -> int | None:
        """The QoS of the subscription matching `topic`, None when nothing matches."""
        best = None
        for topic_filter, qos in self.subscriptions.items():
            if topic_matches(topic_filter, topic):
                best = qos if best is None else max(best, qos)
        return best

    def next_packet_id(self) -> int:
        self._packet_id = self._packet_id % 0xFFFF + 1
        return self._packet_id

    def outgoing(self, topic: str, payload: bytes) -> Send | None:
        """A PUBLISH to the client at its subscription's QoS, or None when it has not subscribed."""
        qos = self.subscribed_qos(topic)
        if qos is None:
            return None
        return Send(mqtt.Publish(topic, payload, qos, self.next_packet_id() if qos else None))

    def event(self, kind: str, reason: str | None, now: float, device: str | None = None) -> None:
        self.context.event(self.endpoint, kind, device or self.device, reason, now)

    def start_drop_fault(self, now: float) -> None:
        fault = self.context.faults.take("drop", self.endpoint, self.device, now)
        if fault is not None:
            self.drop_after = int(fault["params"]["after_packets"])

    def _delayed(self, actions: list[Action], now: float) -> list[Action]:
        if not any(isinstance(a, Send) for a in actions):
            return actions
        fault = self.context.faults.take("delay", self.endpoint, self.device, now)
        if fault is not None:
            for action in actions:
                if isinstance(action, Send):
                    action.delay = float(fault["params"]["seconds"])
        return actions


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT wildcard matching ('+' one level, '#' the rest)."""
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
