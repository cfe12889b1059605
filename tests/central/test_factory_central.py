"""Issue #16's second acceptance test: a factory line against an application with automatic
approval off. With --create-devices three virtual boards come online, each device created (and so
approved) before its board is provisioned, with its own keys from the application; without it the
boards stay waiting for approval, and the run says so and how to approve them."""

from __future__ import annotations

import json

import pytest

from tests.central.conftest import central_cli
from tests.factory.conftest import FactoryProcess, board_identity, cli_env
from tests.factory.conftest import stations_factory as stations_factory  # the fixture
from tests.factory.test_line_emulator import technician

BOARDS = 3


@pytest.fixture
def central(tmp_path):
    """The emulator with automatic approval off, and an API token for it."""
    from iotcprov.emulator import Emulator

    from tests.board.conftest import run_cli

    with Emulator.running(tmp_path / "emulator", extra_args=["--no-auto-approve"]) as emu:
        emu.token_file = tmp_path / "central.token"
        out = run_cli(
            "emulator", "--data", str(emu.data_dir), "token", "create", "--out", str(emu.token_file)
        )
        assert out.returncode == 0, out.stderr
        yield emu


def _line_args(emu, stations, prefix: str, manifest) -> list[str]:
    info = emu.info
    return [
        "--prefix", prefix, "--count", str(BOARDS), "--ports", ",".join(stations.ports),
        "--central", info["central_url"], "--central-token-file", str(emu.token_file),
        "--trust", info["ca_cert"], "--dps-host", f"{info['dps']['host']}:{info['dps']['port']}",
        "--hub-port", str(info["hub"]["port"]), "--wifi-ssid", "lab", "--main", "--online-check",
        "--online-timeout", "60", "--manifest", str(manifest), "--plain",
    ]  # fmt: skip


def _devices(emu, prefix: str) -> dict[str, dict]:
    out = central_cli(emu, "devices", "list", "--json")
    assert out.returncode == 0, out.stderr
    return {d["id"]: d for d in json.loads(out.stdout) if d["id"].startswith(prefix)}


def test_create_devices_brings_boards_online_without_approval(central, stations_factory, tmp_path):
    stations = stations_factory(BOARDS)
    for index in range(BOARDS):
        stations.plug(index)
    factory = FactoryProcess(
        _line_args(central, stations, "approved-", tmp_path / "line.sqlite") + ["--create-devices"],
        env=cli_env(),
    )
    technician(factory, stations, boards_wanted=BOARDS)
    assert factory.wait(60) == 0, factory.output()
    # the first device was created as the run started, to read the ID scope from its credentials
    assert factory.output().count(" created ") == BOARDS - 1

    devices = _devices(central, "approved-")
    assert sorted(devices) == [f"approved-{n}" for n in range(1, BOARDS + 1)]
    assert all(d["enabled"] and d["provisioned"] for d in devices.values()), devices
    for board in stations.used:  # each board holds its device's own key, from the application
        assert board_identity(board)["auth"] == "sas"


def test_without_create_devices_boards_wait_for_approval(central, stations_factory, tmp_path):
    group_key = central.admin.create_sas_group("line")["primary_key"]
    stations = stations_factory(BOARDS)
    for index in range(BOARDS):
        stations.plug(index)
    factory = FactoryProcess(
        _line_args(central, stations, "waiting-", tmp_path / "line.sqlite")
        + ["--id-scope", central.info["id_scope"]],
        env=cli_env(IOTCPROV_GROUP_KEY=group_key),
    )
    technician(factory, stations, boards_wanted=BOARDS)
    assert factory.wait(60) == 1, factory.output()
    output = factory.output()
    for n in range(1, BOARDS + 1):
        assert f"device waiting-{n} is waiting for approval" in output, output
        assert f"iotcprov central devices approve --device-id waiting-{n}" in output
    assert "wait for approval in the application" in output  # the summary says it once more

    devices = _devices(central, "waiting-")
    assert sorted(devices) == [f"waiting-{n}" for n in range(1, BOARDS + 1)]
    assert not any(d["enabled"] or d["provisioned"] for d in devices.values()), devices
