"""Fault injection as the firmware tests will use it: each fault observable on the wire."""

from __future__ import annotations

import json
import time

import pytest
from iotcprov.emulator import mqtt_codec as mqtt

from tests.emulator.helpers import (
    connect_hub_sas,
    dps_answer,
    dps_client,
    dps_token,
    dps_username,
    provision_sas,
    register,
)


@pytest.fixture(autouse=True)
def _clear_faults(emulator):
    yield
    emulator.admin.clear_faults()


@pytest.fixture(scope="module")
def device(emulator):
    enrollment = emulator.admin.enroll_sas("fault-dev")
    provision_sas(emulator, "fault-dev", enrollment["primary_key"])
    return "fault-dev", enrollment["primary_key"]


def _dps(emulator, device):
    device_id, key = device
    client = dps_client(emulator)
    assert (
        client.connect(
            device_id, dps_username(emulator, device_id), dps_token(emulator, key, device_id)
        ).return_code
        == 0
    )
    client.subscribe("$dps/registrations/res/#")
    return client


def _register_once(client, device_id: str, rid: int) -> tuple[int, dict, dict]:
    body = json.dumps({"registrationId": device_id}).encode()
    client.publish(f"$dps/registrations/PUT/iotdps-register/?$rid={rid}", body)
    return dps_answer(client)


def test_next_dps_answers_throttled_then_normal(emulator, device):
    emulator.admin.fault("dps-status", status=429, retry_after=7, count=2)
    client = _dps(emulator, device)
    try:
        for rid in (1, 2):
            status, body, query = _register_once(client, "fault-dev", rid)
            assert (status, body["errorCode"], query["retry-after"], query["$rid"]) == (
                429,
                429001,
                "7",
                str(rid),
            )
        status, body, query = _register_once(client, "fault-dev", 3)
        assert status == 202 and body["status"] == "assigning"
    finally:
        client.close()
    assert emulator.admin.faults() == []


def test_service_unavailable_answer(emulator, device):
    emulator.admin.fault("dps-status", status=503, retry_after=2)
    client = _dps(emulator, device)
    try:
        status, body, _ = _register_once(client, "fault-dev", 1)
    finally:
        client.close()
    assert status == 503 and body["errorCode"] == 503001


def test_registration_rate_limit(emulator, device):
    emulator.admin.fault("dps-rate", per_minute=0)
    client = _dps(emulator, device)
    try:
        status, body, query = _register_once(client, "fault-dev", 1)
    finally:
        client.close()
    assert status == 429 and int(query["retry-after"]) >= 1


def test_refuse_next_hub_connect_then_accept(emulator, device):
    device_id, key = device
    emulator.admin.fault("refuse-connect", endpoint="hub", return_code=5, device=device_id)
    client, connack = connect_hub_sas(emulator, device_id, key)
    client.close()
    assert connack.return_code == 5
    client, connack = connect_hub_sas(emulator, device_id, key)
    client.close()
    assert connack.return_code == 0


def test_drop_after_packets(emulator, device):
    device_id, key = device
    emulator.admin.fault("drop", endpoint="hub", after_packets=2)
    client, connack = connect_hub_sas(emulator, device_id, key)
    assert connack.return_code == 0
    client.publish(f"devices/{device_id}/messages/events/", b"{}")
    assert client.closed_by_server(timeout=5)
    client.close()


def test_session_limit_ends_sessions_before_token_expiry(emulator, device):
    device_id, key = device
    emulator.admin.fault("session-limit", seconds=1)
    client, connack = connect_hub_sas(emulator, device_id, key, ttl=3600)
    started = time.monotonic()
    assert connack.return_code == 0
    assert client.closed_by_server(timeout=5)
    assert time.monotonic() - started > 0.8  # the session lasted (no upper bound: CI may be loaded)
    client.close()
    deadline = time.monotonic() + 5
    while emulator.admin.device(device_id)["connected"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator.admin.device(device_id)["disconnect_reason"] == "fault: session limit reached"


def test_outage_drops_and_refuses_until_over(emulator, device):
    device_id, key = device
    client, connack = connect_hub_sas(emulator, device_id, key)
    assert connack.return_code == 0
    emulator.admin.fault("outage", seconds=1.5)
    assert client.closed_by_server(timeout=5)
    client.close()
    again, connack = connect_hub_sas(emulator, device_id, key)
    again.close()
    assert connack.return_code == mqtt.REFUSED_SERVER_UNAVAILABLE
    time.sleep(1.6)  # the outage is defined by wall-clock duration
    again, connack = connect_hub_sas(emulator, device_id, key)
    again.close()
    assert connack.return_code == 0


def test_delayed_answers(emulator, device):
    device_id, key = device
    emulator.admin.fault("delay", endpoint="dps", seconds=0.6, count=1)
    client = dps_client(emulator)
    try:
        started = time.monotonic()
        connack = client.connect(
            device_id, dps_username(emulator, device_id), dps_token(emulator, key, device_id)
        )
        assert connack.return_code == 0 and time.monotonic() - started >= 0.55
        # count=1: the CONNACK used the fault up, so no later answer is delayed (a count, not a
        # stopwatch: a loaded machine makes any answer slow)
        assert [f for f in emulator.admin.faults() if f["kind"] == "delay" and f["remaining"] != 0] == []
        status, _ = register(client, device_id)
        assert status == 200
    finally:
        client.close()


def test_bad_fault_records_are_refused(emulator):
    with pytest.raises(Exception, match="status"):
        emulator.admin.fault("dps-status", retry_after=1)
    with pytest.raises(Exception, match="unknown fault"):
        emulator.admin.fault("meteor")
    with pytest.raises(Exception, match="endpoint"):
        emulator.admin.fault("drop", endpoint="moon", after_packets=1)
