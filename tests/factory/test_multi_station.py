"""Several station processes on one manifest (both back-ends), one SIGKILLed mid-board: every ID
ends on exactly one board, whether the killed station comes back and finishes its board, or its
claim is released (`iotcprov factory release`) and the ID reissued. Plus a claim-only stress:
20 stations x 500 claims, no ID twice.

The stations are claim-only (tests/factory/claim_station.py): the manifest sees exactly what a
real station does; the "board" is a file holding the identity it was given. The same scenario
with `factory run` and virtual boards: test_multi_station_boards.py.
"""

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from iotcprov.factory.audit import read_audit
from iotcprov.factory.devices import generate_range
from iotcprov.factory.manifest import is_postgres, open_manifest

from tests.factory.conftest import cli_env

ROOT = Path(__file__).resolve().parents[2]


class Station:
    def __init__(self, location: str, name: str, boards_dir: Path, *options: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.factory.claim_station", location, name, str(boards_dir), *options],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cli_env(),
        )  # fmt: skip

    def until(self, word: str) -> list[str]:
        """Read its lines until one starts with `word` (the station says each step as it happens)."""
        while True:
            line = self.process.stdout.readline()
            assert line, f"station {self.name} ended before {word!r}: {self.process.stderr.read()}"
            if line.startswith(word):
                return line.split()

    def finish(self, timeout: float = 120) -> list[str]:
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err
        return out.splitlines()


def holders(boards_dir: Path) -> dict[str, list[str]]:
    """device ID -> the boards holding its identity."""
    found: dict[str, list[str]] = {}
    for board in boards_dir.iterdir():
        if not board.name.startswith("."):
            found.setdefault(board.read_text(), []).append(board.name)
    return found


def check_every_id_on_exactly_one_board(location: str, boards_dir: Path, ids: int) -> dict:
    with open_manifest(location) as manifest:
        records = {r.device_id: r for r in manifest.records()}
    on_boards = holders(boards_dir)
    assert len(records) == ids and all(r.status == "done" for r in records.values()), records
    assert sorted(on_boards) == sorted(records)  # every ID on a board ...
    for device_id, boards in on_boards.items():
        assert boards == [records[device_id].board_id], (device_id, boards)  # ... on exactly one
    return records


def start_line(location: str, tmp_path: Path, hold_stage: str) -> tuple[Path, list[Station], list[str]]:
    """3 stations x 3 boards on 9 IDs; station C is killed at its second board after `hold_stage`."""
    with open_manifest(location) as manifest:
        manifest.add_devices(generate_range("dev-", 1, 9))
    boards_dir = tmp_path / "boards"
    boards_dir.mkdir()
    running = [Station(location, name, boards_dir) for name in ("A", "B")]
    victim = Station(location, "C", boards_dir, "--hold-at", "1", "--hold-stage", hold_stage)
    held = victim.until("holding")  # holding DEVICE BOARD: mid-board, its claim in the manifest
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(30)
    for station in running:
        station.finish()
    return boards_dir, running, held


def test_a_killed_station_restarted_finishes_its_board_with_the_same_id(manifest_location, tmp_path):
    boards_dir, _, (_, held_device, held_board) = start_line(manifest_location, tmp_path, "provision")
    with open_manifest(manifest_location) as manifest:
        killed = manifest.for_board(held_board)
    assert (killed.device_id, killed.status, killed.station, killed.stage) == (
        held_device,
        "claimed",
        "C",
        "provision",
    )
    assert (boards_dir / held_board).read_text() == held_device  # the identity reached the board

    restarted = Station(manifest_location, "C", boards_dir).finish()
    assert restarted[0] == "none C-b0"  # finished before the kill: skipped
    assert restarted[1] == f"claimed {held_device} C-b1 2"  # the same ID, second attempt
    records = check_every_id_on_exactly_one_board(manifest_location, boards_dir, 9)
    assert Counter(r.station for r in records.values()) == {"A": 3, "B": 3, "C": 3}


def test_a_killed_stations_claim_released_is_reissued_never_on_two_boards(manifest_location, tmp_path):
    boards_dir, _, (_, held_device, held_board) = start_line(manifest_location, tmp_path, "claimed")
    assert not (boards_dir / held_board).exists()  # killed before any identity byte
    audit = tmp_path / "release.audit.jsonl"
    release = subprocess.run(
        [sys.executable, "-m", "iotcprov", "factory", "release", "--station", "C", "--audit", str(audit)],
        capture_output=True, text=True, env=cli_env(IOTCPROV_MANIFEST=manifest_location), timeout=60,
    )  # fmt: skip
    assert release.returncode == 0, release.stderr
    assert f"released: device {held_device} (board {held_board}, stage claimed): reissued" in release.stdout
    assert "1 claim(s) released" in release.stdout
    if is_postgres(manifest_location):
        assert "@" not in release.stdout or ":***@" in release.stdout  # never the password
    (event,) = [e for e in read_audit(audit) if e["event"] == "released"]
    assert (event["device"], event["held_by"], event["action"]) == (held_device, "C", "reissued")

    newcomer = Station(manifest_location, "D", boards_dir, "--boards", "2").finish()
    assert f"claimed {held_device} D-b0 2" in newcomer  # the released ID, first in line (its 2nd claim)
    records = check_every_id_on_exactly_one_board(manifest_location, boards_dir, 9)
    assert records[held_device].board_id == "D-b0"


STRESS_STATIONS, STRESS_CLAIMS = 20, 500


@pytest.mark.slow
def test_stress_20_stations_500_claims_each_no_duplicates(manifest_location, tmp_path):
    location = manifest_location
    ids = STRESS_STATIONS * STRESS_CLAIMS
    with open_manifest(location) as manifest:
        manifest.add_devices(generate_range("s-", 1, ids))
    boards_dir = tmp_path / "boards"
    boards_dir.mkdir()
    stations = [
        Station(location, f"st{n:02d}", boards_dir, "--boards", str(STRESS_CLAIMS), "--quiet")
        for n in range(STRESS_STATIONS)
    ]
    for station in stations:
        assert station.finish(timeout=600) == [f"exit {STRESS_CLAIMS}"]
    records = check_every_id_on_exactly_one_board(location, boards_dir, ids)
    assert len({r.board_id for r in records.values()}) == ids
