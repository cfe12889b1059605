"""Interruptions: a board pulled mid-provision, then the factory process SIGKILLed mid-run. The
manifest stays consistent, and the rerun finishes without reissuing an ID: finished boards keep
theirs, the pulled board and the board in hand at the kill resume with the IDs bound to them.

Boards at the two stations where the interruptions happen run at 115200 baud, so that the pull
and the kill land inside the identity transfer; the others run unthrottled. The station where the
line is killed gets its board only once the pulled board's failure was reported.
"""

import base64
import queue
import sqlite3
from collections import Counter

from iotcprov.factory.audit import read_audit
from iotcprov.factory.manifest import open_manifest

from tests.factory.conftest import FactoryProcess, board_identity, cli_env, field

GROUP_KEY = base64.b64encode(bytes(range(100, 164))).decode()
IDS = 16
# Boards the rerun may use in all: one that fails (the line reports it, the harness unplugs it) is
# replaced, so the run still finishes and the assertions say what went wrong, up to this many.
MAX_BOARDS = IDS + 4
PULLED, KILLED = 3, 2  # stations
SLOW_BAUD = 115200


def board_id(board) -> str:
    return board.mac.replace(":", "").lower()


def plug(stations, index: int):
    if index in (PULLED, KILLED):
        stations.board_options = {"baud": SLOW_BAUD}
    try:
        return stations.plug(index)
    finally:
        stations.board_options = {}


def check_consistent(manifest_path, stations) -> dict:
    """The manifest agrees with itself and with the boards; returns its records by device ID."""
    db = sqlite3.connect(manifest_path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with open_manifest(manifest_path) as manifest:
        records = {r.device_id: r for r in manifest.records()}
    by_board = {board_id(b): b for b in stations.used}
    holders = Counter()
    for board in stations.used:
        identity = board_identity(board)
        if identity is not None:
            holders[identity["device_id"]] += 1
    assert all(count == 1 for count in holders.values()), holders  # never one ID on two boards
    for record in records.values():
        if record.status == "pending":
            assert record.board_id is None and record.fingerprint is None
            assert holders[record.device_id] == 0
            continue
        assert record.board_id in by_board and record.claimed_at
        if record.status == "done":
            identity = board_identity(by_board[record.board_id])
            assert identity["device_id"] == record.device_id and identity["fingerprint"] == record.fingerprint
            assert record.finished_at and record.error is None
    return records


def run(args) -> FactoryProcess:
    return FactoryProcess(args, env=cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY))


def next_event(line: FactoryProcess) -> tuple:
    """The line's next event; a line silent for two minutes fails the test with what it said."""
    try:
        return line.events.get(timeout=120)
    except queue.Empty:
        raise AssertionError("the line said nothing for 120 s:\n" + "\n".join(line.lines[-40:])) from None


def test_pulled_board_and_killed_factory_resume_without_reissuing(stations_factory, tmp_path):
    stations = stations_factory(4)
    for index in range(4):
        if index != KILLED:
            plug(stations, index)
    manifest = tmp_path / "line.sqlite"
    args = [
        "--ports", ",".join(stations.ports), "--id-scope", "0ne00ABCDEF", "--trust", "azure",
        "--manifest", str(manifest), "--plain",
    ]  # fmt: skip
    ids = ["--prefix", "line3-", "--start", "1", "--count", str(IDS)]

    # --- run 1: pull the board at station PULLED once it has its ID; after its failure, plug a board
    # into station KILLED and kill the line when that board has its ID
    first = run([*ids, *args])
    pulled = pulled_device = killed_device = None
    done = 0
    while True:
        name, port, rest = next_event(first)
        assert name != "exit", "the line ended before it was killed:\n" + first.output()
        index = stations.station_of(port) if port in stations.ports else None
        if name == "claimed" and index == PULLED and pulled is None:
            pulled, pulled_device = stations.unplug(index), field(rest, "device")
        elif name == "claimed" and index == KILLED:
            first.process.kill()
            killed_device = field(rest, "device")
            break
        elif name == "done":
            done += 1
            stations.unplug(index)
        elif name == "failed":
            assert index == PULLED and field(rest, "device") == pulled_device, rest
            plug(stations, KILLED)
        elif name == "waiting" and index not in (PULLED, KILLED) and len(stations.used) < IDS:
            plug(stations, index)
    first.wait(30)
    assert "failed" in first.output() and pulled_device in first.output()

    records = check_consistent(manifest, stations)
    finished_before = {d: r for d, r in records.items() if r.status == "done"}
    assert len(finished_before) >= 3
    assert records[pulled_device].status == "failed" and records[pulled_device].board_id == board_id(pulled)
    assert records[pulled_device].stage in ("provision", "verify") and records[pulled_device].error
    killed_board = stations.plugged[KILLED]
    assert records[killed_device].status == "claimed" and records[killed_device].board_id == board_id(
        killed_board
    )
    with open_manifest(manifest) as opened:
        assert opened.runs()[0]["ended_at"] is None  # the killed run never closed

    # --- run 2: the pulled board is plugged in again; everything still plugged stays
    stations.plug(PULLED, pulled)
    second = run(args)  # no IDs given: the manifest has them
    failed = 0
    while True:
        name, port, rest = next_event(second)
        if name == "exit":
            break
        index = stations.station_of(port) if port in stations.ports else None
        if name in ("done", "failed", "skipped", "no-ids"):
            stations.unplug(index)
            failed += name == "failed"
        elif name == "waiting" and len(stations.used) - failed < IDS and len(stations.used) < MAX_BOARDS:
            plug(stations, index)
    assert second.wait(30) == 0, second.output()

    records = check_consistent(manifest, stations)
    assert all(r.status == "done" for r in records.values()) and len(records) == IDS
    assert len(stations.used) == IDS  # the pulled and the interrupted boards were not replaced
    for device_id, before in finished_before.items():  # finished boards untouched
        after = records[device_id]
        assert (after.board_id, after.fingerprint, after.finished_at, after.attempts) == (
            before.board_id, before.fingerprint, before.finished_at, 1,
        )  # fmt: skip
    assert records[pulled_device].board_id == board_id(pulled) and records[pulled_device].attempts == 2
    assert records[killed_device].board_id == board_id(killed_board) and records[killed_device].attempts == 2

    audit = read_audit(tmp_path / "line.audit.jsonl")
    assert Counter(e["device"] for e in audit if e["event"] == "done") == Counter(records.keys())  # once each
    claims = Counter(e["device"] for e in audit if e["event"] == "claimed")
    assert all(claims[d] == 1 for d in finished_before)  # a finished ID was never handed out again
    assert claims[pulled_device] == claims[killed_device] == 2
    with open_manifest(manifest) as opened:
        runs = opened.runs()
    assert len(runs) == 2 and runs[1]["ended_at"]
