"""The manifest: claims are transactions (threads and processes never get the same ID), a claim
stays with its board, and a rerun's settings must match the first run's.

Every test taking `manifest_location` runs against both back-ends: a SQLite file and a real
PostgreSQL database (conftest.py starts the server)."""

import multiprocessing
import sqlite3
import threading
import time

import pytest
from iotcprov.errors import InputError, OperationError
from iotcprov.factory.devices import DeviceEntry, generate_range
from iotcprov.factory.manifest import open_manifest

IDS = 120


def _claim_all(path: str, worker: str, run_id: str, ready=None, go=None) -> list[tuple[str, str]]:
    """Claim with a new board each time until no ID is left; [(device ID, board ID)]."""
    got = []
    with open_manifest(path, station=worker) as manifest:
        if ready is not None:
            ready.put(worker)
            go.wait(60)
        for number in range(IDS + 1):
            board = f"{worker}-{number}"
            record = manifest.claim(board, "port", run_id)
            if record is None:
                return got
            got.append((record.device_id, board))
            time.sleep(0.005)  # the board's work between claim and record (not a synchronisation)
            manifest.finish(record.device_id, board, fingerprint="sha256:00", firmware_version="1")
    return got


def _claim_in_process(path: str, worker: str, ready, go, results) -> None:
    results.put((worker, _claim_all(path, worker, worker, ready, go)))


def test_threads_and_processes_never_get_the_same_id(manifest_location):
    path = manifest_location
    with open_manifest(path) as manifest:
        manifest.add_devices(generate_range("dev-", 1, IDS))
    context = multiprocessing.get_context("spawn")
    results, ready, go = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(target=_claim_in_process, args=(str(path), f"proc{n}", ready, go, results))
        for n in range(2)
    ]
    for process in processes:
        process.start()
    thread_results: list = []

    def in_thread(n: int) -> None:
        thread_results.extend(_claim_all(str(path), f"thread{n}", "t", ready, go))

    threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(len(processes) + len(threads)):
        ready.get(timeout=60)
    go.set()  # everyone at once, each with its manifest open
    for thread in threads:
        thread.join(60)
    claimed = list(thread_results)
    for _ in processes:
        worker, got = results.get(timeout=60)
        assert got, f"{worker} claimed nothing: no contention between processes was tested"
        claimed += got
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    device_ids = [device for device, _ in claimed]
    assert sorted(device_ids) == sorted(f"dev-{n:03d}" for n in range(1, IDS + 1))  # each exactly once
    with open_manifest(path) as manifest:
        records = manifest.records()
    assert all(r.status == "done" for r in records)
    assert {r.device_id: r.board_id for r in records} == dict(claimed)


def test_a_claim_stays_with_its_board(manifest_location):
    with open_manifest(manifest_location) as manifest:
        manifest.add_devices([DeviceEntry("a"), DeviceEntry("b"), DeviceEntry("c")])
        first = manifest.claim("board-1", "p1", "run1")
        assert (first.device_id, first.status, first.attempts) == ("a", "claimed", 1)
        manifest.fail("a", "board-1", stage="provision", error="the board stopped answering")
        # another board never gets a failed board's ID ...
        assert manifest.claim("board-2", "p2", "run1").device_id == "b"
        # ... the failed board itself resumes with it
        again = manifest.claim("board-1", "p3", "run2")
        assert (again.device_id, again.attempts, again.port, again.error) == ("a", 2, "p3", None)
        manifest.finish("a", "board-1", fingerprint="sha256:11", firmware_version="0.1.0")
        assert manifest.claim("board-1", "p1", "run2") is None  # done: skipped
        redo = manifest.claim("board-1", "p1", "run2", again=True)  # --reprovision: the same ID
        assert (redo.device_id, redo.attempts) == ("a", 3)
        with pytest.raises(OperationError, match="not held by board board-2"):
            manifest.finish("a", "board-2", fingerprint="x", firmware_version=None)
        assert manifest.claim("board-3", "p1", "run2").device_id == "c"
        assert manifest.claim("board-4", "p1", "run2") is None  # none left
        counts = manifest.counts()
        assert (counts.pending, counts.claimed, counts.done, counts.total) == (0, 3, 0, 3)


def raw_execute(location: str, sql: str) -> None:
    """One statement straight to the back-end, past the manifest's own rules."""
    if location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as db:
            db.execute(sql)
    else:
        db = sqlite3.connect(location)
        try:
            db.execute(sql)
            db.commit()
        finally:
            db.close()


def integrity_error(location: str) -> type[Exception]:
    if location.startswith("postgresql://"):
        import psycopg

        return psycopg.IntegrityError
    return sqlite3.IntegrityError


def test_one_row_per_board_and_no_board_on_a_pending_row(manifest_location):
    path = manifest_location
    with open_manifest(path) as manifest:
        manifest.add_devices([DeviceEntry("a"), DeviceEntry("b")])
        manifest.claim("board-1", "p", "r")
    with pytest.raises(integrity_error(path)):
        raw_execute(path, "UPDATE devices SET status = 'claimed', board_id = 'board-1' WHERE device_id = 'b'")
    with pytest.raises(integrity_error(path)):
        raw_execute(path, "UPDATE devices SET board_id = 'board-9' WHERE device_id = 'b'")


def test_adding_ids_keeps_order_and_refuses_a_changed_model(manifest_location):
    with open_manifest(manifest_location) as manifest:
        assert manifest.add_devices([DeviceEntry("a"), DeviceEntry("b", "dtmi:x:y;1")]) == 2
        assert manifest.add_devices([DeviceEntry("B", "dtmi:x:y;1"), DeviceEntry("c")]) == 1
        assert [r.device_id for r in manifest.records()] == ["a", "b", "c"]
        with pytest.raises(InputError, match=r"--devices: line 4: device 'b' is in the manifest with model"):
            manifest.add_devices([DeviceEntry("b", "dtmi:x:y;2", 4)])


def test_settings_of_the_first_run_bind_the_manifest(manifest_location):
    path = manifest_location
    with open_manifest(path) as manifest:
        manifest.bind_settings(id_scope="0ne00AAAAAA", auth="sas")
    with open_manifest(path) as manifest:
        manifest.bind_settings(id_scope="0ne00AAAAAA", auth="sas")
        with pytest.raises(InputError, match="--id-scope: the manifest .* was started with '0ne00AAAAAA'"):
            manifest.bind_settings(id_scope="0ne00BBBBBB", auth="sas")
        with pytest.raises(InputError, match="--group-key/--ca-cert: the manifest .* 'sas', not 'x509'"):
            manifest.bind_settings(id_scope="0ne00AAAAAA", auth="x509")


def test_unusable_paths(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        open_manifest(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        open_manifest(tmp_path / "no" / "m.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="not a usable SQLite manifest"):
        open_manifest(junk)
