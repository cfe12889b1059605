"""Rules for boards a line meets: recognised by unique ID (skipped, or re-provisioned with their
own ID), boards holding someone else's identity, boards arriving when every ID is handed out, and
bad input refused before any board is touched."""

import base64
import os
import signal
import subprocess
import sys
import threading

import pytest
from iotcprov.board import provision
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.identity import IdentityRequest, build_identity
from iotcprov.board.trust import azure_roots
from iotcprov.factory import events as ev
from iotcprov.factory.audit import read_audit
from iotcprov.factory.credentials import GroupKeySource
from iotcprov.factory.devices import DeviceEntry
from iotcprov.factory.job import FactoryJob
from iotcprov.factory.line import PortList, run_line
from iotcprov.factory.manifest import open_manifest

from tests.factory.conftest import FactoryProcess, board_identity, cli_env

GROUP_KEY = base64.b64encode(bytes(range(7, 71))).decode()
SCOPE = "0ne00ABCDEF"


def job(**changes) -> FactoryJob:
    return FactoryJob(id_scope=SCOPE, credentials=GroupKeySource(GROUP_KEY), trust=azure_roots(), **changes)


def run(board, manifest, ids, **changes):
    """One board through the line; the line is stopped once that board is finished with (a fixed
    port otherwise waits for the next board)."""
    seen: list[ev.Event] = []
    stop = threading.Event()

    def on_event(event: ev.Event) -> None:
        seen.append(event)
        if event.name in (ev.DONE, ev.SKIPPED, ev.FAILED, ev.NO_IDS):
            stop.set()

    entries = [DeviceEntry(i) for i in ids]
    port = PortList((board.port,))
    summary = run_line(job(**changes), manifest, entries, port, on_event=on_event, stop=stop)
    return summary, [e for e in seen if e.name in (ev.CLAIMED, ev.DONE, ev.SKIPPED, ev.FAILED, ev.NO_IDS)]


def names(events) -> list[str]:
    return [e.name for e in events]


def test_a_board_in_the_manifest_is_skipped_or_reprovisioned_with_its_own_id(stations_factory, tmp_path):
    stations = stations_factory(1)
    board = stations.plug(0)
    manifest = tmp_path / "m.sqlite"
    summary, events = run(board, manifest, ["a"])
    assert summary.complete and names(events) == [ev.CLAIMED, ev.DONE]

    summary, events = run(board, manifest, ["a", "b"])  # the same board again, with more IDs to give
    assert names(events) == [ev.SKIPPED] and events[-1].get("device") == "a"
    assert not summary.complete and summary.after.pending == 1

    summary, events = run(board, manifest, ["a", "b"], reprovision=True)
    assert names(events) == [ev.CLAIMED, ev.DONE] and events[-1].get("device") == "a"
    with open_manifest(manifest) as opened:
        a, b = opened.records()
    assert (a.status, a.attempts, b.status, b.board_id) == ("done", 2, "pending", None)
    assert board_identity(board)["device_id"] == "a"


def test_a_board_holding_another_identity_needs_replace(stations_factory, tmp_path):
    stations = stations_factory(1)
    board = stations.plug(0)
    foreign = build_identity(
        IdentityRequest(
            SCOPE, "from-elsewhere", sas_from_group_key(GROUP_KEY, "from-elsewhere"), azure_roots()
        )
    )
    provision.provision(board.port, foreign)
    manifest = tmp_path / "m.sqlite"

    summary, events = run(board, manifest, ["c"])
    assert names(events) == [ev.FAILED]
    failure = events[-1]
    assert failure.get("stage") == "check" and "holds device 'from-elsewhere'" in failure.get("error")
    assert "--replace" in failure.get("error")
    with open_manifest(manifest) as opened:
        assert opened.records()[0].status == "pending"  # no ID was bound to a board that failed its check
    assert board_identity(board)["device_id"] == "from-elsewhere"

    summary, events = run(board, manifest, ["c"], replace=True)
    assert summary.complete and board_identity(board)["device_id"] == "c"


def test_a_board_arriving_after_the_last_id_is_left_alone(stations_factory, tmp_path):
    stations = stations_factory(1)
    first = stations.plug(0)
    manifest = tmp_path / "m.sqlite"
    run(first, manifest, ["only"])
    stations.unplug(0)
    second = stations.plug(0)
    summary, events = run(second, manifest, ["only"])
    assert names(events) == [ev.NO_IDS] and summary.complete
    assert not (second.directory / "lib").exists() and board_identity(second) is None  # nothing deployed


def test_bad_csv_is_refused_before_any_board_is_touched(stations_factory, tmp_path):
    stations = stations_factory(1)
    board = stations.plug(0)
    devices = tmp_path / "devices.csv"
    devices.write_text("device_id\nok-1\nbad id\n\nok-1\n")
    board.wait_for_output(r">>> $")  # booted to its prompt: anything printed later came from the run
    mark = len(board.output())
    args = ["--ports", board.port, "--id-scope", SCOPE, "--manifest", str(tmp_path / "m.sqlite")]
    result = subprocess.run(
        [sys.executable, "-m", "iotcprov", "factory", "run", "--devices", str(devices), *args],
        capture_output=True, text=True, timeout=60, env=cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY),
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    error = result.stderr.strip()
    assert "\n" not in error and error.startswith(f"iotcprov: error: --devices: {devices}: 3 problems:")
    assert "line 3: device ID: character ' '" in error and "line 4: empty row" in error
    assert "line 5: device ID 'ok-1' repeats line 2" in error
    assert not (tmp_path / "m.sqlite").exists() and not (tmp_path / "m.audit.jsonl").exists()
    assert board.output()[mark:] == "" and not any(board.directory.iterdir())

    devices.write_text("device_id\nok-1\n")  # the same command with a good file does reach the board
    result = subprocess.run(
        [sys.executable, "-m", "iotcprov", "factory", "run", "--devices", str(devices), *args],
        capture_output=True, text=True, timeout=60, env=cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "raw REPL" in board.output()[mark:] and board_identity(board)["device_id"] == "ok-1"


def test_a_misnamed_csv_header_is_refused_with_the_expected_one_named(tmp_path):
    devices = tmp_path / "devices.csv"
    devices.write_text("deviceId\nok-1\nok-2\n")
    manifest = tmp_path / "m.sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "iotcprov", "factory", "run", "--devices", str(devices), "--ports",
         str(tmp_path / "no-board"), "--id-scope", SCOPE, "--manifest", str(manifest)],
        capture_output=True, text=True, timeout=60, env=cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY),
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert result.stderr == (
        f"iotcprov: error: --devices: {devices}: line 1: unknown header 'deviceId'; name the column "
        "'device_id' (and 'model_id'), or leave the header out\n"
    )
    assert not manifest.exists() and not (tmp_path / "m.audit.jsonl").exists()  # nothing claimed


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--prefix", "x-", "--count", "2"], {}, "--ports: give either --ports P1,P2,... or --watch"),
        (["--prefix", "x-", "--count", "2", "--ports", "a", "--watch"], {}, "--ports: give either"),
        (
            ["--devices", "d.csv", "--prefix", "x", "--ports", "a"],
            {},
            "--devices: give either --devices CSV or",
        ),
        (["--prefix", "x-", "--ports", "a"], {}, "--count: give how many IDs"),
        (
            ["--ports", "a"],
            {"IOTCPROV_GROUP_KEY": GROUP_KEY},
            "--devices: the manifest holds no device IDs yet",
        ),
        (["--count", "3", "--ports", "a,a"], {"IOTCPROV_GROUP_KEY": GROUP_KEY}, "--ports: a is given twice"),
        (["--count", "3", "--ports", "a"], {}, "--group-key: give exactly one credential source"),
        (
            [
                "--count",
                "3",
                "--ports",
                "a",
                "--ca-cert",
                "ca.pem",
                "--ca-key",
                "ca.key",
                "--group-key",
                GROUP_KEY,
            ],
            {},
            "--group-key: give exactly one credential source",
        ),
        (["--count", "3", "--ports", "a", "--ca-cert", "ca.pem"], {}, "--ca-cert: X.509 needs both"),
        (
            ["--count", "3", "--ports", "a", "--label-include-key"],
            {"IOTCPROV_GROUP_KEY": GROUP_KEY},
            "--label-include-key: give --labels DIR too",
        ),
        (
            ["--count", "3", "--ports", "a", "--model-id", "thermostat"],
            {"IOTCPROV_GROUP_KEY": GROUP_KEY},
            "--model-id: 'thermostat' does not start with 'dtmi:'",
        ),
        (["--count", "3", "--ports", "a", "--group-key", "not-base64!"], {}, "--group-key: not valid base64"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, monkeypatch, args, env, expected):
    from iotcprov.cli import main

    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("IOTCPROV_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["factory", "run", "--id-scope", SCOPE, *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("iotcprov: error: " + expected) and error.count("\n") == 1, error
    assert GROUP_KEY not in error and not list(tmp_path.iterdir())  # nothing written


def test_ctrl_c_ends_the_run_cleanly(stations_factory, tmp_path):
    """A station waiting for the next board stops at Ctrl-C; the run is recorded as ended."""
    stations = stations_factory(1)
    stations.plug(0)
    manifest = tmp_path / "m.sqlite"
    factory = FactoryProcess(
        ["--count", "3", "--prefix", "c-", "--ports", stations.ports[0], "--id-scope", SCOPE,
         "--manifest", str(manifest)],
        env=cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY),
    )  # fmt: skip
    while True:
        name, port, rest = factory.events.get(timeout=60)
        assert name != "exit", factory.output()
        if name == "swap":  # the board stays plugged: the station says it waits for the next one
            assert rest == (
                f"reason=waiting for a new board on {port}: unplug the finished board, plug in the next"
            )
            factory.process.send_signal(signal.SIGINT)
            break
    assert factory.wait(30) == 1, factory.output()
    assert factory.output().count(" swap ") == 1  # once per wait
    assert "stopping" in factory.output() and "this run: 1 done" in factory.output()
    with open_manifest(manifest) as opened:
        assert [r.status for r in opened.records()] == ["done", "pending", "pending"]
        assert opened.runs()[0]["ended_at"]
    assert read_audit(tmp_path / "m.audit.jsonl")[-1]["event"] == "run ended"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_first_stop_signal_finishes_the_board_in_hand_then_ends(stations_factory, tmp_path, signum):
    """Ctrl-C (or SIGTERM, as a service manager stops a run) mid-board: the board is finished,
    recorded done, and the run ends recorded; nothing is abandoned."""
    stations = stations_factory(1, baud=115200)  # slow enough for the signal to land mid-transfer
    stations.plug(0)
    manifest = tmp_path / "m.sqlite"
    factory = FactoryProcess(
        ["--count", "3", "--prefix", "t-", "--ports", stations.ports[0], "--id-scope", SCOPE,
         "--manifest", str(manifest)],
        env=cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY),
    )  # fmt: skip
    while True:
        name, _port, rest = factory.events.get(timeout=120)
        assert name != "exit", factory.output()
        if name == "stage=provision" or "stage=provision" in rest:
            factory.process.send_signal(signum)
            break
    assert factory.wait(120) == 1, factory.output()
    output = factory.output()
    assert "stopping" in output and "this run: 1 done, 0 failed" in output, output
    with open_manifest(manifest) as opened:
        assert [r.status for r in opened.records()] == ["done", "pending", "pending"]
        run = opened.runs()[0]
        assert run["ended_at"] and run["outcome"], run
    assert read_audit(tmp_path / "m.audit.jsonl")[-1]["event"] == "run ended"
    assert board_identity(stations.plugged[0])["device_id"] == "t-1"


def test_second_ctrl_c_ends_at_once(stations_factory, tmp_path):
    """A second Ctrl-C does not wait for the board in hand: the claim stays for the rerun."""
    stations = stations_factory(1, baud=115200)
    stations.plug(0)
    manifest = tmp_path / "m.sqlite"
    factory = FactoryProcess(
        ["--count", "2", "--prefix", "u-", "--ports", stations.ports[0], "--id-scope", SCOPE,
         "--manifest", str(manifest)],
        env=cli_env(IOTCPROV_GROUP_KEY=GROUP_KEY),
    )  # fmt: skip
    while True:
        name, _port, rest = factory.events.get(timeout=120)
        assert name != "exit", factory.output()
        if name == "stage=provision" or "stage=provision" in rest:
            factory.process.send_signal(signal.SIGINT)
        if name == "stopping":
            factory.process.send_signal(signal.SIGINT)
            break
    assert factory.wait(120) == 130, factory.output()
    assert "iotcprov: interrupted" in factory.output()
    with open_manifest(manifest) as opened:
        assert [r.status for r in opened.records()] == ["claimed", "pending"]
