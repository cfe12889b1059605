"""DPS CONNECT fields, topics, payloads and answer parsing (firmware/iotc/dps.py) on CPython."""

import json

import pytest
from iotc import dps


def test_username_and_topics():
    assert dps.username("0ne00ABCDEF", "dev-1").startswith(
        "0ne00ABCDEF/registrations/dev-1/api-version=2019-03-31&ClientVersion=iotc-micropython%2F"
    )
    assert dps.SUBSCRIBE_TOPIC == "$dps/registrations/res/#"
    assert dps.register_topic(1) == "$dps/registrations/PUT/iotdps-register/?$rid=1"
    assert (
        dps.poll_topic(2, "4.abc/def")
        == "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.abc%2Fdef"
    )


def test_register_payload_carries_the_model_id():
    assert json.loads(dps.register_payload("dev-1", "dtmi:com:example:Thermostat;1")) == {
        "registrationId": "dev-1",
        "payload": {"modelId": "dtmi:com:example:Thermostat;1"},
    }
    assert json.loads(dps.register_payload("dev-1")) == {"registrationId": "dev-1"}


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("$dps/registrations/res/202/?$rid=1&retry-after=3", (202, 1, 3)),
        ("$dps/registrations/res/200/?$rid=7", (200, 7, None)),
        ("$dps/registrations/res/429/?retry-after=12&$rid=2", (429, 2, 12)),
        ("$dps/registrations/res/500/?$rid=x&retry-after=-1", (500, None, None)),
        ("$dps/registrations/res/abc/?$rid=1", None),
        ("$dps/registrations/res/200", None),
        ("devices/d/messages/devicebound/", None),
    ],
)
def test_response_topic(topic, parsed):
    assert dps.parse_response_topic(topic) == parsed


def test_assigning_answer():
    answer = dps.parse_answer(202, b'{"operationId":"4.x.y","status":"assigning"}', 3)
    assert (answer.kind, answer.operation_id, answer.retry_after) == ("assigning", "4.x.y", 3)
    assert dps.parse_answer(202, b'{"status":"assigning"}').kind == "error"  # nothing to poll


def test_assigned_answer_gives_hub_and_device():
    body = {
        "operationId": "4.x.y",
        "status": "assigned",
        "registrationState": {
            "registrationId": "dev-1",
            "assignedHub": "iotc-1.azure-devices.net",
            "deviceId": "dev-1",
            "status": "assigned",
            "substatus": "initialAssignment",
        },
    }
    answer = dps.parse_answer(200, json.dumps(body).encode())
    assert (answer.kind, answer.hub, answer.device_id) == ("assigned", "iotc-1.azure-devices.net", "dev-1")
    body["registrationState"].pop("assignedHub")
    assert dps.parse_answer(200, json.dumps(body)).kind == "error"


@pytest.mark.parametrize("kind", ["failed", "disabled"])
def test_failed_and_disabled_answers_carry_the_error(kind):
    body = {
        "status": kind,
        "registrationState": {"status": kind, "errorCode": 400209, "errorMessage": "nope"},
    }
    answer = dps.parse_answer(200, json.dumps(body))
    assert (answer.kind, answer.error_code, answer.message) == (kind, 400209, "nope")


def test_disabled_without_message_says_why():
    answer = dps.parse_answer(200, '{"status":"disabled","registrationState":{"status":"disabled"}}')
    assert answer.message == "enrollment disabled"


def test_error_answer():
    answer = dps.parse_answer(401, b'{"errorCode":401002,"trackingId":"t","message":"Unauthorized"}')
    assert (answer.kind, answer.status, answer.error_code, answer.message) == (
        "error",
        401,
        401002,
        "Unauthorized",
    )
    throttled = dps.parse_answer(429, b'{"errorCode":429001}', 9)
    assert (throttled.kind, throttled.retry_after) == ("error", 9)


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b'"text"'])
def test_unreadable_bodies_are_errors_not_crashes(body):
    answer = dps.parse_answer(200, body)
    assert answer.kind == "error" and answer.message == "unreadable answer body"


def test_unexpected_status_value_is_an_error():
    assert dps.parse_answer(200, '{"status":"unassigned"}').kind == "error"
