"""DPS and hub behaviour without any socket: packets in, actions out, deadlines as numbers."""

from __future__ import annotations

import json
import time

import pytest
from iotcprov.credentials import sas
from iotcprov.emulator import mqtt_codec as mqtt
from iotcprov.emulator.dps import DpsSession, DpsState
from iotcprov.emulator.hub import HubRegistry, HubSession, encode_bag, parse_bag
from iotcprov.emulator.session import Close, Config, Context, Send, topic_matches
from iotcprov.emulator.store import Store, merge_patch

NOW = 1_800_000_000.0


@pytest.fixture
def context(tmp_path):
    store = Store(tmp_path)
    yield Context(store, Config(hub_name="hub.local"))
    store.close()


def _enroll(context, device_id="unit-1") -> str:
    key = "a2V5LWZvci11bml0LXRlc3RzLW9ubHktMzItYnl0ZXMhIQ=="
    context.store.add_individual({"device_id": device_id, "attestation": "sas", "primary_key": key})
    return key


def _dps_connect(context, key, device_id="unit-1", now=NOW):
    session = DpsSession(context, DpsState(), None, now)
    scope = context.store.id_scope()
    token = sas.dps_token(key, scope, device_id, int(now) + 60)
    packet = mqtt.Connect(
        device_id, f"{scope}/registrations/{device_id}/api-version=2019-03-31", token.encode()
    )
    return session, session.handle(packet, now)


def test_first_packet_must_be_connect(context):
    session = DpsSession(context, DpsState(), None, NOW)
    assert session.handle(mqtt.Pingreq(), NOW) == [Close("first packet is not CONNECT")]


def test_dps_register_202_then_assigned_on_first_poll(context):
    key = _enroll(context)
    session, actions = _dps_connect(context, key)
    assert actions == [Send(mqtt.Connack(0))]
    assert session.handle(mqtt.Subscribe(1, [("$dps/registrations/res/#", 1)]), NOW) == [
        Send(mqtt.Suback(1, [1]))
    ]
    body = json.dumps({"registrationId": "unit-1", "payload": {"modelId": "dtmi:x;1"}}).encode()
    actions = session.handle(mqtt.Publish("$dps/registrations/PUT/iotdps-register/?$rid=42", body), NOW)
    (answer,) = actions
    assert answer.packet.topic == "$dps/registrations/res/202/?$rid=42&retry-after=1"
    operation = json.loads(answer.packet.payload)["operationId"]
    topic = f"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=43&operationId={operation}"
    (answer,) = session.handle(mqtt.Publish(topic), NOW + 1)
    assert answer.packet.topic == "$dps/registrations/res/200/?$rid=43"
    state = json.loads(answer.packet.payload)["registrationState"]
    assert (state["assignedHub"], state["deviceId"], state["substatus"]) == (
        "hub.local",
        "unit-1",
        "initialAssignment",
    )
    assert context.store.device("unit-1")["dps_model_id"] == "dtmi:x;1"


def test_dps_refusal_is_connack_5_and_close(context):
    _enroll(context)
    session, actions = _dps_connect(context, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkhIQ==")
    assert actions[0] == Send(mqtt.Connack(5)) and isinstance(actions[1], Close)
    assert context.store.events()[-1]["reason"] == "token signature does not match the key"


def test_keep_alive_deadline_is_one_and_a_half_intervals(context):
    key = _enroll(context)
    session, _ = _dps_connect(context, key)
    session.keep_alive = 10
    session.handle(mqtt.Pingreq(), NOW + 5)
    assert session.deadline() == NOW + 5 + 15
    assert session.on_timer(NOW + 19) == []
    assert isinstance(session.on_timer(NOW + 20)[0], Close)


def _hub_session(context, key, now=NOW, ttl=60):
    context.store.record_registration(
        "unit-1",
        {
            "enrollment_kind": "individual",
            "enrollment_name": "unit-1",
            "attestation": "sas",
            "assigned_hub": "hub.local",
            "status": "assigned",
        },
        now,
    )
    registry = HubRegistry()
    session = HubSession(context, registry, None, now)
    token = sas.hub_token(key, "hub.local", "unit-1", int(now) + ttl)
    actions = session.handle(
        mqtt.Connect("unit-1", "hub.local/unit-1/?api-version=2021-04-12", token.encode()), now
    )
    return session, registry, actions


def test_hub_session_deadline_is_the_token_expiry(context):
    key = _enroll(context)
    session, _, actions = _hub_session(context, key, ttl=30)
    assert actions == [Send(mqtt.Connack(0))]
    assert session.deadline() == min(int(NOW) + 30, NOW + 1.5 * 60)
    assert session.on_timer(int(NOW) + 30) == [Close("token expired")]


def test_hub_qos2_and_unknown_topic_close(context):
    key = _enroll(context)
    session, _, _ = _hub_session(context, key)
    assert session.handle(mqtt.Publish("devices/unit-1/messages/events/", b"", 2, 1), NOW) == [
        Close("QoS 2 PUBLISH is not supported")
    ]
    session2, _, _ = _hub_session(context, key)
    assert isinstance(session2.handle(mqtt.Publish("$iothub/nope", b""), NOW)[0], Close)


def test_hub_kick_pushes_close_to_the_older_session(context):
    key = _enroll(context)
    first, registry, _ = _hub_session(context, key)
    pushed = []
    first.sink = pushed.extend
    second = HubSession(context, registry, None, NOW)
    token = sas.hub_token(key, "hub.local", "unit-1", int(NOW) + 60)
    second.handle(mqtt.Connect("unit-1", "hub.local/unit-1/?api-version=2021-04-12", token.encode()), NOW)
    assert pushed == [Close("another connection for the same device")]
    assert registry.session("unit-1") is second


def test_topic_filters_bags_and_merge_patch():
    assert topic_matches("$iothub/twin/res/#", "$iothub/twin/res/200/?$rid=1")
    assert topic_matches("a/+/c", "a/b/c") and not topic_matches("a/+/c", "a/b/d")
    assert not topic_matches("a/b", "a/b/c")
    bag = {"$.ct": "application/json", "note": "a b&c=d"}
    assert parse_bag(encode_bag(bag)) == bag
    assert merge_patch({"a": 1, "b": {"c": 1, "d": 2}}, {"a": None, "b": {"d": 3}, "$version": 9}) == {
        "b": {"c": 1, "d": 3}
    }


def test_time_is_only_what_the_caller_passes(context):
    key = _enroll(context)
    session, _ = _dps_connect(context, key, now=time.time() + 10_000)  # far future: token still valid then
    assert session.connected
