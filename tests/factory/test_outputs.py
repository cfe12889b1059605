"""What a run leaves for people: labels, the CSV report, the terminal views."""

import csv
import io
import stat

import pytest
from iotcprov.factory import events as ev
from iotcprov.factory.devices import DeviceEntry
from iotcprov.factory.labels import label_payload, label_png, write_label
from iotcprov.factory.manifest import open_manifest
from iotcprov.factory.report import REPORT_COLUMNS, report_csv
from iotcprov.factory.view import LiveView, PlainView, make_view, plain_line
from rich.console import Console

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


@pytest.mark.smoke
def test_label_holds_scope_and_id_and_the_key_only_when_asked(tmp_path):
    plain = write_label(tmp_path, "0ne00ABCDEF", "line3-001", "dtmi:com:example:A;1")
    assert plain.read_bytes() == label_png(
        '{"scope":"0ne00ABCDEF","device":"line3-001","model":"dtmi:com:example:A;1"}'
    )
    assert stat.S_IMODE(plain.stat().st_mode) == 0o644
    keyed = write_label(tmp_path, "0ne00ABCDEF", "line3-002", None, KEY)
    assert keyed.read_bytes() == label_png(label_payload("0ne00ABCDEF", "line3-002", device_key=KEY))
    assert stat.S_IMODE(keyed.stat().st_mode) == 0o600
    assert label_payload("0ne00ABCDEF", "line3-002", device_key=KEY).endswith(f'"key":"{KEY}"}}')
    assert plain.read_bytes() != label_png(label_payload("0ne00ABCDEF", "line3-001"))  # the model counts


def test_report_has_the_contract_columns_and_one_row_per_id(tmp_path):
    path = tmp_path / "m.sqlite"
    with open_manifest(path) as manifest:
        manifest.add_devices([DeviceEntry("a"), DeviceEntry("b", "dtmi:x:y;1"), DeviceEntry("c")])
        manifest.claim("b0ard1", "/dev/ttyUSB0", "run")
        manifest.finish("a", "b0ard1", fingerprint="sha256:0011223344556677", firmware_version="0.1.0")
        manifest.claim("b0ard2", "/dev/ttyUSB1", "run")
        manifest.fail("b", "b0ard2", stage="provision", error="the board stopped answering")
    text, counts = report_csv(path)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == REPORT_COLUMNS
    assert REPORT_COLUMNS[:4] == ("device_id", "board_id", "fingerprint", "status")
    assert [(r["device_id"], r["board_id"], r["status"]) for r in rows] == [
        ("a", "b0ard1", "done"),
        ("b", "b0ard2", "failed"),
        ("c", "", "pending"),
    ]
    assert rows[0]["fingerprint"] == "sha256:0011223344556677" and rows[1]["error"]
    assert (counts.done, counts.failed, counts.pending) == (1, 1, 1)
    only_failed, _ = report_csv(path, "failed")
    assert len(list(csv.DictReader(io.StringIO(only_failed)))) == 1


def test_plain_lines_read_like_status_lines():
    line = plain_line(
        ev.Event(ev.FAILED, "/dev/ttyUSB1", {"device": "d-1", "stage": "provision", "error": "a b c"})
    )
    assert line[9:] == "/dev/ttyUSB1 failed device=d-1 stage=provision error=a b c"
    stage = plain_line(ev.Event(ev.STAGE, "COM3", {"stage": "deploy", "board": "0a1b"}))
    assert stage[9:] == "COM3 stage=deploy board=0a1b"
    assert plain_line(ev.Event(ev.WAITING, None))[9:] == "- waiting"


@pytest.mark.smoke
def test_views_pick_the_terminal_and_render_rows_totals_and_failures():
    piped = Console(file=io.StringIO())
    assert isinstance(make_view(piped, "t"), PlainView)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=160, record=True)
    view = make_view(terminal, "line 3")
    assert isinstance(view, LiveView)
    for event in (
        ev.Event(ev.RUN_STARTED, None, {"counts": {"pending": 12}}),
        ev.Event(ev.STAGE, "/dev/ttyUSB0", {"stage": "deploy", "board": "240ac4000001"}),
        ev.Event(ev.PROGRESS, "/dev/ttyUSB0", {"stage": "deploy", "sent": 12800}),
        ev.Event(ev.CLAIMED, "/dev/ttyUSB1", {"board": "240ac4000002", "device": "d-7", "attempt": 1}),
        ev.Event(ev.FAILED, "/dev/ttyUSB1", {"device": "d-7", "stage": "provision", "error": "cable pulled"}),
        ev.Event(ev.DONE, "/dev/ttyUSB2", {"board": "240ac4000003", "device": "d-8"}),
        ev.Event(ev.SWAP, "/dev/ttyUSB2", {"reason": "waiting for a new board on /dev/ttyUSB2"}),
        ev.Event(ev.STAGE, "/dev/ttyUSB3", {"stage": "flash", "board": None}),
        ev.Event(ev.PROGRESS, "/dev/ttyUSB3", {"stage": "flash", "sent": 0, "percent": 42}),
    ):
        view.on_event(event)
    terminal.print(view)
    shown = terminal.export_text()
    assert "/dev/ttyUSB0" in shown and "deploy" in shown and "12.5 KB" in shown
    assert "failed 1" in shown and "left 11" in shown
    assert "failed: /dev/ttyUSB1 d-7 at provision: cable pulled" in shown
    assert "d-8" in shown and "waiting for a new board on /dev/ttyUSB2" in shown  # the done row stays
    assert "42%" in shown  # the flash step's percentage on its port's row


def test_plain_view_prints_every_event_but_progress():
    out = io.StringIO()
    view = PlainView(Console(file=out))
    view.on_event(ev.Event(ev.PROGRESS, "p", {"sent": 1}))
    view.on_event(ev.Event(ev.DONE, "p", {"device": "d-1"}))
    assert out.getvalue().count("\n") == 1 and " p done device=d-1" in out.getvalue()
