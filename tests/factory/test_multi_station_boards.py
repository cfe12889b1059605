"""Three `factory run` stations (three processes, each its own --station and port) on one
manifest (a PostgreSQL database, and a SQLite file shared on one host), three virtual boards
each, nine IDs. One station is SIGKILLed while its second board (at 115200 baud, so the kill
lands in the transfer) holds its claim, then restarted with the same name: it finishes that
board with the same ID. Every ID ends on exactly one board, each station did three."""

import base64
import queue
from collections import Counter

from iotcprov.factory.audit import read_audit
from iotcprov.factory.devices import generate_range
from iotcprov.factory.manifest import open_manifest

from tests.factory.conftest import FactoryProcess, board_identity, cli_env, field

GROUP_KEY = base64.b64encode(bytes(range(7, 71))).decode()
NAMES = ("pc-a", "pc-b", "pc-c")
VICTIM = 2  # station index
PER_STATION = 3


def board_id(board) -> str:
    return board.mac.replace(":", "").lower()


def test_three_stations_one_killed_and_restarted_every_id_on_one_board(
    stations_factory, manifest_location, tmp_path
):
    location = manifest_location
    stations = stations_factory(len(NAMES))
    events: queue.Queue = queue.Queue()
    env = cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY, IOTCPROV_MANIFEST=location)

    def start(index: int, label: str) -> FactoryProcess:
        args = [
            "--prefix", "multi-", "--count", "9", "--ports", stations.ports[index], "--station", NAMES[index],
            "--id-scope", "0ne00ABCDEF", "--trust", "azure", "--plain",
            "--audit", str(tmp_path / f"{NAMES[index]}.audit.jsonl"),
        ]  # fmt: skip
        return FactoryProcess(args, env=env, events=events, name=label)

    plugged = Counter()

    def plug(index: int, slow: bool = False) -> object:
        stations.board_options = {"baud": 115200} if slow else {}
        try:
            plugged[index] += 1
            return stations.plug(index)
        finally:
            stations.board_options = {}

    for index in range(len(NAMES)):
        plug(index)
    processes = {name: start(index, name) for index, name in enumerate(NAMES)}
    killed_device = killed_board = None
    running = set(NAMES)  # process labels: the restarted station is "pc-c again"
    while running:
        name, port, rest = events.get(timeout=180)
        if name == "exit":
            running.discard(rest)
            continue
        index = stations.station_of(port) if port in stations.ports else None
        if index is None:
            continue
        if name == "claimed" and index == VICTIM and plugged[VICTIM] == 2 and killed_device is None:
            victim = processes[NAMES[VICTIM]]
            victim.process.kill()  # SIGKILL, mid-board
            victim.wait(30)
            killed_device, killed_board = field(rest, "device"), stations.plugged[VICTIM]
            with open_manifest(location) as manifest:
                held = manifest.for_board(board_id(killed_board))
            assert (held.device_id, held.status, held.station) == (killed_device, "claimed", NAMES[VICTIM])
            processes[NAMES[VICTIM]] = start(VICTIM, "pc-c again")  # same --station; the board stays
            running.add("pc-c again")
        elif name == "done":
            stations.unplug(index)
        elif name == "failed":
            raise AssertionError(f"{NAMES[index]}: {rest}\n" + processes[NAMES[index]].output())
        elif name == "waiting" and plugged[index] < PER_STATION:
            plug(index, slow=index == VICTIM and plugged[index] == 1)
    for process in processes.values():
        assert process.wait(60) == 0, process.output()
    assert killed_device is not None, "the victim station was never killed mid-board"

    with open_manifest(location) as manifest:
        records = {r.device_id: r for r in manifest.records()}
    assert len(records) == 9 and all(r.status == "done" for r in records.values())
    holders = Counter(board_identity(b)["device_id"] for b in stations.used if board_identity(b))
    assert sorted(holders) == sorted(records) and set(holders.values()) == {1}  # each ID on one board
    by_board = {board_id(b): b for b in stations.used}
    for record in records.values():
        assert board_identity(by_board[record.board_id])["device_id"] == record.device_id
    assert Counter(r.station for r in records.values()) == dict.fromkeys(NAMES, PER_STATION)
    assert records[killed_device].board_id == board_id(killed_board) and records[killed_device].attempts == 2
    audit = read_audit(tmp_path / f"{NAMES[VICTIM]}.audit.jsonl")
    assert all(event["station"] == NAMES[VICTIM] for event in audit)
    assert [e["device"] for e in audit if e["event"] == "claimed"].count(killed_device) == 2


def test_a_stale_claim_is_released_by_the_next_station_said_on_output_and_audit(
    stations_factory, manifest_location, tmp_path
):
    from tests.factory.test_manifest import raw_execute

    with open_manifest(manifest_location, station="dead-pc") as manifest:
        manifest.add_devices(generate_range("multi-", 1, 2))
        manifest.claim("0badc0ffee00", "/dev/ttyUSB7", "gone")  # died before any identity byte
    raw_execute(manifest_location, "UPDATE devices SET updated_at = '2020-01-01T00:00:00.000Z'")
    stations = stations_factory(1)
    stations.plug(0)
    audit = tmp_path / "live.audit.jsonl"
    args = [
        "--prefix", "multi-", "--count", "2", "--ports", stations.ports[0], "--station", "live-pc",
        "--claim-timeout", "600", "--id-scope", "0ne00ABCDEF", "--trust", "azure", "--plain",
        "--audit", str(audit),
    ]  # fmt: skip
    line = FactoryProcess(
        args, env=cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY, IOTCPROV_MANIFEST=manifest_location)
    )
    while True:
        name, port, rest = line.events.get(timeout=120)
        if name == "exit":
            break
        if name == "done":
            stations.unplug(0)
        elif name == "waiting" and len(stations.used) < 2:
            stations.plug(0)
    assert line.wait(30) == 0, line.output()
    output = line.output()
    assert " - released device=multi-1 board=0badc0ffee00 held_by=dead-pc" in output
    assert "released: device multi-1 of station 'dead-pc' (board 0badc0ffee00, stage claimed" in output
    (event,) = [e for e in read_audit(audit) if e["event"] == "released"]
    assert (event["device"], event["held_by"], event["station"], event["action"]) == (
        "multi-1", "dead-pc", "live-pc", "reissued",
    )  # fmt: skip
    with open_manifest(manifest_location) as manifest:
        records = manifest.records()
    assert [(r.device_id, r.status, r.station) for r in records] == [
        ("multi-1", "done", "live-pc"), ("multi-2", "done", "live-pc"),
    ]  # fmt: skip
    assert {r.board_id for r in records} == {board_id(b) for b in stations.used}
