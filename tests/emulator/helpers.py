"""Raw DPS/hub flows over the project's codec, for tests that need exact protocol control."""

from __future__ import annotations

import json
import time
import urllib.parse

from iotcprov.credentials import sas
from iotcprov.emulator import mqtt_codec as mqtt

from tests.emulator.rawclient import RawClient

DPS_API = "api-version=2019-03-31"
HUB_API = "?api-version=2021-04-12"


def dps_client(emulator, cert: tuple[str, str] | None = None) -> RawClient:
    info = emulator.info
    return RawClient(info["dps"]["address"], info["dps"]["port"], info["ca_cert"], info["dps"]["host"], cert)


def hub_client(emulator, cert: tuple[str, str] | None = None) -> RawClient:
    info = emulator.info
    return RawClient(info["hub"]["address"], info["hub"]["port"], info["ca_cert"], info["hub"]["host"], cert)


def dps_username(emulator, registration_id: str, scope: str | None = None) -> str:
    return f"{scope or emulator.info['id_scope']}/registrations/{registration_id}/{DPS_API}"


def dps_token(emulator, key: str, registration_id: str, ttl: int = 3600) -> str:
    return sas.dps_token(key, emulator.info["id_scope"], registration_id, int(time.time()) + ttl)


def hub_username(emulator, device_id: str, model_id: str | None = None) -> str:
    name = f"{emulator.info['hub']['name']}/{device_id}/{HUB_API}"
    return name + (f"&model-id={urllib.parse.quote(model_id, safe='')}" if model_id else "")


def hub_token(emulator, key: str, device_id: str, ttl: int = 3600) -> str:
    return sas.hub_token(key, emulator.info["hub"]["name"], device_id, int(time.time()) + ttl)


def dps_answer(client: RawClient) -> tuple[int, dict, dict]:
    """(status, body, topic query) of the next DPS answer."""
    packet = client.expect(mqtt.Publish)
    if packet.qos:
        client.send(mqtt.Puback(packet.packet_id))
    status, _, query = packet.topic[len("$dps/registrations/res/") :].partition("/?")
    return int(status), json.loads(packet.payload), dict(urllib.parse.parse_qsl(query))


def register(client: RawClient, registration_id: str, payload: dict | None = None, rid: int = 1):
    """Register and poll until a final answer; returns (status, body) of the last answer."""
    client.subscribe("$dps/registrations/res/#")
    body = {"registrationId": registration_id, **({"payload": payload} if payload else {})}
    client.publish(f"$dps/registrations/PUT/iotdps-register/?$rid={rid}", json.dumps(body).encode(), qos=1)
    while True:
        packet = client.receive()
        if isinstance(packet, mqtt.Puback):
            continue
        assert isinstance(packet, mqtt.Publish), packet
        client.send(mqtt.Puback(packet.packet_id)) if packet.qos else None
        status_text, _, query = packet.topic[len("$dps/registrations/res/") :].partition("/?")
        status, answer = int(status_text), json.loads(packet.payload)
        if status != 202:
            return status, answer
        rid += 1
        operation = answer["operationId"]
        client.publish(
            f"$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={operation}"
        )


def provision_sas(emulator, device_id: str, key: str) -> dict:
    client = dps_client(emulator)
    try:
        assert (
            client.connect(
                device_id, dps_username(emulator, device_id), dps_token(emulator, key, device_id)
            ).return_code
            == 0
        )
        status, answer = register(client, device_id)
        assert status == 200 and answer["status"] == "assigned", answer
        return answer
    finally:
        client.close()


def connect_hub_sas(
    emulator, device_id: str, key: str, ttl: int = 3600, keep_alive: int = 60, clean_session: bool = True
) -> tuple[RawClient, mqtt.Connack]:
    client = hub_client(emulator)
    connack = client.connect(
        device_id,
        hub_username(emulator, device_id),
        hub_token(emulator, key, device_id, ttl),
        keep_alive=keep_alive,
        clean_session=clean_session,
    )
    return client, connack


def events_for(emulator, device_id: str, kind: str | None = None) -> list[dict]:
    return [e for e in emulator.admin.events(device=device_id) if kind is None or e["kind"] == kind]
