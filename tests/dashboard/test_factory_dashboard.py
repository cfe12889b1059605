"""The factory dashboard's state and server without a browser: what a tile says, an error's fix
apart, the address option, the JSON the page reads."""

from __future__ import annotations

import json
import urllib.request

import pytest
from iotcprov.dashboard.factory import FactoryDashboard, LineState, parse_address, split_fix
from iotcprov.errors import InputError
from iotcprov.factory import events as ev


def test_a_failed_board_shows_its_error_and_the_fix_apart():
    state = LineState("line")
    state.on_event(ev.Event(ev.RUN_STARTED, None, {"counts": {"pending": 3}}))
    state.on_event(ev.Event(ev.BOARD, "/dev/ttyUSB0", {"board": "b1"}))
    state.on_event(ev.Event(ev.STAGE, "/dev/ttyUSB0", {"stage": ev.DEPLOY}))
    (tile,) = state.snapshot()["tiles"]
    assert (tile["state"], tile["stage_number"], tile["result"]) == ("deploy", 4, None)
    error = "board holds device 'x'; give --replace to provision it again"
    state.on_event(ev.Event(ev.FAILED, "/dev/ttyUSB0", {"board": "b1", "stage": "check", "error": error}))
    snapshot = state.snapshot()
    (tile,) = snapshot["tiles"]
    assert tile["error"] == "board holds device 'x'" and tile["fix"] == "give --replace to provision it again"
    assert snapshot["counts"]["failed"] == 1 and snapshot["recent"][0]["result"] == "failed"


def test_split_fix_and_addresses():
    assert split_fix("no reason given") == ("no reason given", None)
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("8080", "host:", "host:port", ":80", "h:70000"):
        with pytest.raises(InputError, match="--dashboard"):
            parse_address(bad)


def test_the_server_answers_the_line_state():
    with FactoryDashboard("a line") as dashboard:
        dashboard.on_event(ev.Event(ev.WAITING, "/dev/ttyUSB1"))
        with urllib.request.urlopen(dashboard.url + "data/line") as response:
            line = json.loads(response.read())
        with urllib.request.urlopen(dashboard.url) as response:
            assert "Factory line" in response.read().decode()
    assert line["title"] == "a line" and line["tiles"][0]["state"] == "waiting"
