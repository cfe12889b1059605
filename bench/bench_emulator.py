"""Emulator throughput on this machine: DPS registrations/s, TLS hub connections held, telemetry/s.

Runs a real emulator process (`Emulator.running`) and drives it with asyncio clients built on the
project's MQTT codec over TLS. Targets (issue 5): >= 100 registrations/s, >= 1,000 concurrent
connections, on 2 cores. Issue 15: the resident memory of a fresh emulator after 5,000 aborted TLS
handshakes (a ClientHello, the server's answer, then a TCP reset) stays under 200 MB (Linux only:
read from /proc); the RSS with 4,000 idle connections (no ClientHello) open is printed too.
Usage: python bench/bench_emulator.py [--devices 1000] [--messages 20000] [--handshakes 5000]
[--idle 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import ssl
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))

from iotcprov.credentials import sas  # noqa: E402
from iotcprov.emulator import Emulator  # noqa: E402
from iotcprov.emulator import mqtt_codec as mqtt  # noqa: E402

TARGET_REGISTRATIONS = 100.0
TARGET_CONNECTIONS = 1000
TARGET_ABORTED_RSS_MB = 200.0


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.parser, self.pending = reader, writer, mqtt.Parser(), []

    @classmethod
    async def open(cls, address: str, port: int, host: str, context: ssl.SSLContext) -> Client:
        reader, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=host)
        return cls(reader, writer)

    def send(self, packet) -> None:
        self.writer.write(mqtt.encode(packet))

    async def receive(self):
        while not self.pending:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed by the emulator")
            self.pending += self.parser.feed(data)
        return self.pending.pop(0)

    def close(self) -> None:
        self.writer.close()


async def register(info: dict, context: ssl.SSLContext, group_key: str, device_id: str) -> None:
    client = await Client.open(info["dps"]["address"], info["dps"]["port"], info["dps"]["host"], context)
    key = sas.derive_device_key(group_key, device_id)
    token = sas.dps_token(key, info["id_scope"], device_id, int(time.time()) + 3600)
    username = f"{info['id_scope']}/registrations/{device_id}/api-version=2019-03-31"
    client.send(mqtt.Connect(device_id, username, token.encode()))
    assert (await client.receive()).return_code == 0
    client.send(mqtt.Subscribe(1, [("$dps/registrations/res/#", 0)]))
    await client.receive()
    body = json.dumps({"registrationId": device_id}).encode()
    client.send(mqtt.Publish("$dps/registrations/PUT/iotdps-register/?$rid=1", body))
    answer = json.loads((await client.receive()).payload)
    topic = f"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={answer['operationId']}"
    client.send(mqtt.Publish(topic))
    final = json.loads((await client.receive()).payload)
    assert final["status"] == "assigned", final
    client.send(mqtt.Disconnect())
    client.close()


async def connect_hub(info: dict, context: ssl.SSLContext, group_key: str, device_id: str) -> Client:
    client = await Client.open(info["hub"]["address"], info["hub"]["port"], info["hub"]["host"], context)
    key = sas.derive_device_key(group_key, device_id)
    token = sas.hub_token(key, info["hub"]["name"], device_id, int(time.time()) + 3600)
    client.send(
        mqtt.Connect(
            device_id,
            f"{info['hub']['name']}/{device_id}/?api-version=2021-04-12",
            token.encode(),
            keep_alive=600,
        )
    )
    connack = await client.receive()
    assert connack.return_code == 0, connack
    return client


async def bounded(tasks, limit: int):
    semaphore = asyncio.Semaphore(limit)

    async def run(factory):
        async with semaphore:
            return await factory()

    return await asyncio.gather(*(run(t) for t in tasks))


async def main_async(emu: Emulator, devices: int, messages: int) -> dict:
    info = emu.info
    context = ssl.create_default_context(cafile=info["ca_cert"])
    group_key = emu.admin.create_sas_group("bench")["primary_key"]
    ids = [f"bench-{n:05d}" for n in range(devices)]

    started = time.perf_counter()
    await bounded([lambda i=i: register(info, context, group_key, i) for i in ids], 50)
    registrations = devices / (time.perf_counter() - started)

    started = time.perf_counter()
    clients = await bounded([lambda i=i: connect_hub(info, context, group_key, i) for i in ids], 100)
    connect_rate = devices / (time.perf_counter() - started)
    held = emu.admin.stats()["connected"]

    senders = clients[: min(100, len(clients))]
    per_client = max(1, messages // len(senders))
    before = emu.admin.stats()["telemetry_received"]

    async def send_all(index: int, client: Client) -> None:
        topic = f"devices/{ids[index]}/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8"
        for n in range(per_client):
            client.send(mqtt.Publish(topic, b'{"temperature": 21.5, "n": %d}' % n, 1, n % 65535 + 1))
            if n % 50 == 49:
                await client.writer.drain()
        acked = 0
        while acked < per_client:
            if isinstance(await client.receive(), mqtt.Puback):
                acked += 1

    started = time.perf_counter()
    await asyncio.gather(*(send_all(i, c) for i, c in enumerate(senders)))
    telemetry = per_client * len(senders) / (time.perf_counter() - started)
    received = emu.admin.stats()["telemetry_received"] - before
    for client in clients:
        client.close()
    return {
        "registrations_per_s": registrations,
        "hub_connects_per_s": connect_rate,
        "connections_held": held,
        "telemetry_per_s": telemetry,
        "telemetry_counted": received,
        "telemetry_sent": per_client * len(senders),
    }


def resident_mb(pid: int) -> float | None:
    """The process's resident set size in MB, or None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def client_hello(host: str) -> bytes:
    """The bytes of a TLS ClientHello, made without a socket."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the server, which is absent
        tls.do_handshake()
    return outgoing.read()


async def aborted_handshakes(info: dict, count: int, parallel: int = 50) -> int:
    """Start `count` TLS handshakes with the hub and reset each once the server has answered."""
    hello = client_hello(info["hub"]["host"])
    semaphore = asyncio.Semaphore(parallel)
    aborted = 0

    async def one() -> None:
        nonlocal aborted
        async with semaphore:
            reader, writer = await asyncio.open_connection(info["hub"]["address"], info["hub"]["port"])
            try:
                writer.write(hello)
                await asyncio.wait_for(reader.read(1), 10)  # the ServerHello: the server is mid-handshake
            finally:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
                writer.transport.abort()
            aborted += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return aborted


def measure_aborted(count: int) -> dict:
    with tempfile.TemporaryDirectory() as folder, Emulator.running(Path(folder)) as emu:
        before = resident_mb(emu.process.pid)
        aborted = asyncio.run(aborted_handshakes(emu.info, count))
        deadline = time.monotonic() + 30  # the server logs each failure; wait until it has all
        while emu.admin.stats()["counters"].get("hub.tls_failures", 0) < aborted:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return {
            "aborted": aborted,
            "rss_before": before,
            "rss_after": resident_mb(emu.process.pid),
            "open_after": emu.admin.stats().get("open_connections"),
        }


def measure_idle(count: int) -> dict:
    """RSS while `count` connections that never send a ClientHello are open, and after they close."""
    with tempfile.TemporaryDirectory() as folder, Emulator.running(Path(folder)) as emu:
        loop = asyncio.new_event_loop()
        try:
            address = (emu.info["hub"]["address"], emu.info["hub"]["port"])
            writers = [loop.run_until_complete(asyncio.open_connection(*address))[1] for _ in range(count)]
            loop.run_until_complete(asyncio.sleep(2))
            held = emu.admin.stats()["open_connections"], resident_mb(emu.process.pid)
            for writer in writers:
                writer.transport.abort()
            loop.run_until_complete(asyncio.sleep(2))
        finally:
            loop.close()
        return {"open": held[0], "rss_held": held[1], "rss_after": resident_mb(emu.process.pid)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--handshakes", type=int, default=5000)
    parser.add_argument("--idle", type=int, default=4000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 2 * args.devices + 200, args.idle + 200))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # the emulator process inherits it
    with tempfile.TemporaryDirectory() as folder, Emulator.running(Path(folder)) as emu:
        result = asyncio.run(main_async(emu, args.devices, args.messages))
    rate = result["registrations_per_s"]
    print(f"DPS registrations/s         {rate:8.1f}   target >= {TARGET_REGISTRATIONS:.0f}")
    print(f"hub TLS connects/s          {result['hub_connects_per_s']:8.1f}")
    print(f"concurrent hub connections  {result['connections_held']:8d}   target >= {TARGET_CONNECTIONS}")
    print(
        f"telemetry messages/s        {result['telemetry_per_s']:8.1f}   "
        f"({result['telemetry_counted']} of {result['telemetry_sent']} counted, QoS 1, acked)"
    )
    memory = measure_aborted(args.handshakes)
    if memory["rss_after"] is None:
        print("memory after aborted TLS handshakes: not measured (no /proc)")
    else:
        print(
            f"emulator RSS after {memory['aborted']} aborted TLS handshakes {memory['rss_after']:8.1f} MB"
            f"   target < {TARGET_ABORTED_RSS_MB:.0f} (at start {memory['rss_before']:.1f} MB;"
            f" connections still open: {memory['open_after']})"
        )
    idle = measure_idle(args.idle)
    if idle["rss_held"] is not None:
        print(
            f"emulator RSS with {args.idle} idle connections {idle['rss_held']:8.1f} MB"
            f"   ({idle['open']} kept in handshake, the rest closed; {idle['rss_after']:.1f} MB after)"
        )
    ok = (
        result["registrations_per_s"] >= TARGET_REGISTRATIONS
        and result["connections_held"] >= TARGET_CONNECTIONS
        and (memory["rss_after"] is None or memory["rss_after"] < TARGET_ABORTED_RSS_MB)
    )
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
