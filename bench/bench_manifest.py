"""Manifest claims per second with many stations at once: SQLite and PostgreSQL.

Each station is a process with its own manifest connection; all start together (an Event), and
each claims the ID for `--claims` new boards. Two figures per back-end: claims/s (the claim
transaction alone: pick the next pending ID, bind it to the board and the station), and boards
recorded/s (claim, then the `done` record: two transactions per board). Every run checks that no
ID was handed out twice.

PostgreSQL: `--dsn postgresql://...` (an empty database you own), else a throwaway server started
with pgserver (pip install -e '.[test]'). Run: .venv/bin/python bench/bench_manifest.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import uuid
from pathlib import Path

from iotcprov.factory.devices import generate_range
from iotcprov.factory.manifest import open_manifest

TARGET = "goal: >= 500 claims/s on one database with 20 stations"


def station(location: str, name: str, claims: int, finish: bool, ready, go, results) -> None:
    got = []
    with open_manifest(location, station=name) as manifest:
        ready.put(name)
        go.wait(120)
        for number in range(claims):
            board = f"{name}-{number}"
            record = manifest.claim(board, "usb", name)
            if record is None:
                break
            got.append(record.device_id)
            if finish:
                manifest.finish(record.device_id, board, fingerprint="sha256:00", firmware_version="1")
    results.put(got)


def measure(location: str, stations: int, claims: int, finish: bool) -> float:
    with open_manifest(location) as manifest:
        manifest.add_devices(generate_range(f"b{uuid.uuid4().hex[:6]}-", 1, stations * claims))
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Queue(), context.Event(), context.Queue()
    processes = [
        context.Process(target=station, args=(location, f"st{n:02d}", claims, finish, ready, go, results))
        for n in range(stations)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    start = time.perf_counter()
    go.set()
    handed = [device for _ in processes for device in results.get(timeout=600)]
    elapsed = time.perf_counter() - start
    for process in processes:
        process.join(60)
    duplicates = len(handed) - len(set(handed))
    assert duplicates == 0 and len(handed) == stations * claims, (duplicates, len(handed))
    return len(handed) / elapsed


def postgres(dsn: str | None):
    """(DSN factory making a fresh database per measurement, stop)."""
    import psycopg

    if dsn is not None:
        return (lambda: dsn), (lambda: None)
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="iotcprov-bench-pg-"))
    folder.chmod(0o755)  # pgserver's server user must reach it when we are root
    server = pgserver.get_server(folder, cleanup_mode="stop")
    uri = server.get_uri()

    def fresh() -> str:
        name = "bench_" + uuid.uuid4().hex[:8]
        with psycopg.connect(uri, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return uri.replace("/postgres?", f"/{name}?", 1)

    return fresh, server.cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--claims", type=int, default=500, help="per station")
    parser.add_argument("--dsn", help="PostgreSQL database to use (default: a throwaway pgserver)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    print(TARGET)
    print(f"{args.stations} stations x {args.claims} claims, {multiprocessing.cpu_count()} CPUs")
    backends = [b for b in ("sqlite", "postgresql") if args.only in (None, b)]
    for backend in backends:
        if backend == "sqlite":
            folder = Path(tempfile.mkdtemp(prefix="iotcprov-bench-"))
            fresh, stop = (lambda f=folder: str(f / f"{uuid.uuid4().hex[:8]}.sqlite")), (lambda: None)
        else:
            fresh, stop = postgres(args.dsn)
        try:
            claims = measure(fresh(), args.stations, args.claims, finish=False)
            boards = measure(fresh(), args.stations, args.claims, finish=True)
        finally:
            stop()
        print(
            f"{backend:<11} {claims:8.0f} claims/s   {boards:8.0f} boards recorded/s (claim + done),"
            " 0 duplicates"
        )


if __name__ == "__main__":
    main()
